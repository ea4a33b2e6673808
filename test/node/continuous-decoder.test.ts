// The pgoutput decoder and the segment text, on hand-built protocol messages:
// the SQL each change becomes (quoting, NULLs, unchanged TOAST left out,
// replica identity), block headers and lengths read back, captured DDL in
// place, heartbeat messages not kept, and the single-statement check.
import { describe, expect, it } from "vitest";
import { headerLine, literal, PgOutputDecoder } from "../../runner/continuous/pgoutput.ts";
import { segmentTransactions } from "../../runner/continuous/segment-text.ts";
import { isSingleStatement } from "../../runner/continuous/ddl.ts";

const int8 = (n: number) => Buffer.from([n]);
const int16 = (n: number) => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b; };
const int32 = (n: number) => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };
const int64 = (n: bigint) => { const b = Buffer.alloc(8); b.writeBigInt64BE(n); return b; };
const cstr = (s: string) => Buffer.concat([Buffer.from(s), Buffer.from([0])]);
const msg = (type: string, ...parts: Buffer[]) => Buffer.concat([Buffer.from(type), ...parts]);
type V = string | null | "UNCHANGED";
const tuple = (values: V[]) => Buffer.concat([int16(values.length), ...values.map((v) =>
  v === null ? Buffer.from("n") : v === "UNCHANGED" ? Buffer.from("u") : Buffer.concat([Buffer.from("t"), int32(Buffer.byteLength(v)), Buffer.from(v)]))]);
const relation = (oid: number, identity: string, cols: [string, number, boolean][]) =>
  msg("R", int32(oid), cstr("public"), cstr("t"), Buffer.from(identity), int16(cols.length),
    ...cols.map(([name, type, key]) => Buffer.concat([int8(key ? 1 : 0), cstr(name), int32(type), int32(-1)])));
// 2026-11-27T16:00:00.123456Z in µs since 2000-01-01
const COMMIT_US = BigInt(Date.parse("2026-11-27T16:00:00.123Z") * 1000 + 456) - 946_684_800_000_000n;
const begin = () => msg("B", int64(0x16b3748n), int64(COMMIT_US), int32(812));
const commit = () => msg("C", int8(0), int64(0x16b3748n), int64(0x16b3790n), int64(COMMIT_US));

describe("pgoutput decoder", () => {
  it("turns a transaction into one block of one-line statements, with its header", () => {
    const d = new PgOutputDecoder();
    d.decode(relation(16384, "d", [["id", 23, true], ["name", 25, false], ["doc", 17, false]]));
    d.decode(begin());
    d.decode(msg("I", int32(16384), Buffer.from("N"), tuple(["1", "it's\nmulti\\line", null])));
    d.decode(msg("U", int32(16384), Buffer.from("N"), tuple(["1", "renamed", "UNCHANGED"])));
    d.decode(msg("U", int32(16384), Buffer.from("K"), tuple(["1", null, null]), Buffer.from("N"), tuple(["2", "moved", "UNCHANGED"])));
    d.decode(msg("D", int32(16384), Buffer.from("K"), tuple(["2", null, null])));
    d.decode(msg("M", int8(0), int64(1n), cstr("astrid_heartbeat"), int32(0))); // not transactional: not kept
    const tx = d.decode(commit())!;
    expect(tx).toMatchObject({ lsn: 0x16b3748n, endLsn: 0x16b3790n, xid: 812, commitAt: "2026-11-27T16:00:00.123456Z" });
    const body = [
      "BEGIN;",
      `INSERT INTO "public"."t" ("id", "name", "doc") VALUES`,
      `(E'1', E'it''s\\nmulti\\\\line', NULL);`,
      `UPDATE "public"."t" SET "id" = E'1', "name" = E'renamed' WHERE "id" = E'1';`,
      `UPDATE "public"."t" SET "id" = E'2', "name" = E'moved' WHERE "id" = E'1';`,
      `DELETE FROM "public"."t" WHERE "id" = E'2';`,
      "COMMIT;", "",
    ].join("\n");
    expect(tx.text).toBe(`-- astrid:tx lsn=0/16B3748 commit=2026-11-27T16:00:00.123456Z xid=812 bytes=${Buffer.byteLength(body)}\n${body}`);
    expect(d.messages).toEqual([]);
  });

  it("consecutive INSERTs into one table share a statement, in order, until another change, another table or the row cap", () => {
    const d = new PgOutputDecoder();
    d.decode(relation(1, "d", [["id", 23, true]]));
    d.decode(relation(2, "d", [["id", 23, true]]));
    d.decode(begin());
    const insert = (rel: number, id: number) => d.decode(msg("I", int32(rel), Buffer.from("N"), tuple([String(id)])));
    insert(1, 1);
    insert(1, 2);
    insert(2, 3);
    insert(1, 4);
    d.decode(msg("D", int32(1), Buffer.from("K"), tuple(["4"])));
    insert(1, 5);
    for (let id = 6; id <= 1006; id++) insert(1, id); // 1,002 rows in a row: cut at 1,000
    const body = d.decode(commit())!.text.split("\n").slice(1).join("\n");
    const statements = body.split(";\n").filter((s) => s.startsWith("INSERT"));
    expect(statements.map((s) => s.split("\n").length - 1)).toEqual([2, 1, 1, 1000, 2]);
    expect(body).toContain(`INSERT INTO "public"."t" ("id") VALUES\n(E'1'),\n(E'2');\nINSERT INTO "public"."t" ("id") VALUES\n(E'3');\n`);
    expect(body).toContain(`(E'4');\nDELETE FROM "public"."t" WHERE "id" = E'4';\nINSERT`);
    expect(body.match(/\(E'(\d+)'\)/g)!.map((v) => Number(v.slice(3, -2)))).toEqual(Array.from({ length: 1006 }, (_, i) => i + 1));
    expect(body.endsWith("(E'1006');\nCOMMIT;\n")).toBe(true);
  });

  it("a transaction over the part size comes in parts that end at statements, BEGIN in the first, COMMIT in the last, and reads back in order", async () => {
    const d = new PgOutputDecoder(() => {}, 200);
    d.decode(relation(1, "d", [["id", 23, true], ["note", 25, false]]));
    d.decode(begin());
    const blocks = [];
    for (let id = 1; id <= 40; id++) {
      const block = d.decode(msg("I", int32(1), Buffer.from("N"), tuple([String(id), "x".repeat(20)])));
      if (block) blocks.push(block);
    }
    blocks.push(d.decode(commit())!);
    expect(blocks.length).toBeGreaterThan(3);
    expect(blocks.map((b) => b.part)).toEqual(blocks.map((_, i) => ({ index: i + 1, last: i === blocks.length - 1 })));
    expect(blocks.map((b) => b.lsn)).toEqual(blocks.map(() => 0x16b3748n));
    expect(blocks[0]!.text.split("\n")[0]).toMatch(/ xid=812 bytes=\d+ part=1 more$/);
    expect(blocks.at(-1)!.text.split("\n")[0]).toMatch(new RegExp(` part=${blocks.length} last$`));
    const bodies = blocks.map((b) => b.text.slice(b.text.indexOf("\n") + 1));
    expect(bodies[0]!.startsWith("BEGIN;\nINSERT")).toBe(true);
    expect(bodies.slice(1, -1).every((b) => b.startsWith("INSERT"))).toBe(true);
    expect(bodies.every((b) => b.endsWith(";\n"))).toBe(true);
    expect(bodies.at(-1)!.endsWith("COMMIT;\n")).toBe(true);
    expect(bodies.join("").match(/\(E'(\d+)'/g)!.map((v) => Number(v.slice(3, -1)))).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    const read = [];
    for await (const t of segmentTransactions((async function* () { yield Buffer.from(blocks.map((b) => b.text).join("")); })())) read.push(t);
    expect(read.map((t) => t.part)).toEqual(blocks.map((b) => b.part));
    expect(read.map((t) => t.block)).toEqual(bodies);
  });

  it("REPLICA IDENTITY FULL without a key changes one of several equal rows; captured DDL runs in its place", () => {
    const d = new PgOutputDecoder();
    d.decode(relation(7, "f", [["a", 23, false], ["b", 25, false]]));
    d.decode(begin());
    d.decode(msg("M", int8(1), int64(1n), cstr("astrid_ddl"), int32(32), Buffer.from("ALTER TABLE t ADD COLUMN c text\n ")));
    d.decode(msg("D", int32(7), Buffer.from("O"), tuple(["5", null])));
    const tx = d.decode(commit())!;
    expect(tx.text).toContain(`ALTER TABLE t ADD COLUMN c text;\nDELETE FROM "public"."t" WHERE ctid = (SELECT ctid FROM "public"."t" WHERE "a" = E'5' AND "b" IS NULL LIMIT 1);`);
    expect(d.messages.map((m) => m.prefix)).toEqual(["astrid_ddl"]);
  });

  it("segment text is read back block by block, by length, across chunk boundaries", async () => {
    const block = (v: string) => `BEGIN;\nINSERT INTO x VALUES (${literal(v)});\nCOMMIT;\n`;
    const blocks = [block("a"), block("-- astrid:tx lsn=0/1 commit=x xid=1 bytes=1\nnot a header"), block("c")];
    const text = blocks.map((b, i) => headerLine(BigInt(i + 1), `2026-01-01T00:00:0${i}.000000Z`, i, Buffer.byteLength(b)) + b).join("");
    const bytes = Buffer.from(text);
    async function* pieces() {
      for (let i = 0; i < bytes.length; i += 7) yield bytes.subarray(i, i + 7);
    }
    const read = [];
    for await (const tx of segmentTransactions(pieces())) read.push(tx);
    expect(read.map((t) => [t.lsnText, t.commitAt, t.block])).toEqual(blocks.map((b, i) => [`0/${i + 1}`, `2026-01-01T00:00:0${i}.000000Z`, b]));
    async function* cut() {
      yield bytes.subarray(0, bytes.length - 3);
    }
    await expect(async () => { for await (const _ of segmentTransactions(cut())) { /* read */ } }).rejects.toThrow(/ends inside a transaction/);
  });

  it("tells one statement from several, whatever quotes and comments hold", () => {
    expect(isSingleStatement("ALTER TABLE t ADD COLUMN c text")).toBe(true);
    expect(isSingleStatement("ALTER TABLE t ADD COLUMN c text;  -- done; really\n")).toBe(true);
    expect(isSingleStatement("CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; SELECT 2; $$ LANGUAGE sql;")).toBe(true);
    expect(isSingleStatement("COMMENT ON TABLE t IS 'a; b'")).toBe(true);
    expect(isSingleStatement("ALTER TABLE t ADD c int; INSERT INTO t VALUES (1)")).toBe(false);
    expect(isSingleStatement("/* ; */ CREATE TABLE a (x int); CREATE TABLE b (y int);")).toBe(false);
  });
});
