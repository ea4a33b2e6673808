// Decoding pgoutput (protocol version 1, text tuple format) into the segment
// payload: plain SQL, one BEGIN … COMMIT block per source transaction, each
// after a header line that names its commit LSN and time, so that a segment
// is replayable with psql alone (docs/format.md, "Change-stream segments").
//
// Values are quoted string literals of the server's text output, which the
// target's input functions read back: E'…' with backslashes, quotes and line
// breaks escaped, so every statement is one line and no value can look like a
// header. UPDATE and DELETE find their row by the replica identity (the key
// columns, or the whole old row for REPLICA IDENTITY FULL); an unchanged
// TOASTed column (pgoutput's 'u') is left out of the UPDATE's SET.
import { createHash } from "node:crypto";

/** Microseconds between the Unix epoch and PostgreSQL's (2000-01-01). */
const PG_EPOCH_US = 946_684_800_000_000n;

export function lsnText(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

export function parseLsn(text: string): bigint {
  const [hi, lo] = text.split("/");
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
}

/** A PostgreSQL timestamp (µs since 2000-01-01) as ISO text with microseconds. */
export function pgTimeIso(us: bigint): string {
  const unixUs = us + PG_EPOCH_US;
  const ms = unixUs / 1000n;
  const micro = Number(unixUs % 1_000_000n).toString().padStart(6, "0");
  return new Date(Number(ms)).toISOString().replace(/\.\d{3}Z$/, `.${micro}Z`);
}

export function pgTimeNow(): bigint {
  return BigInt(Date.now()) * 1000n - PG_EPOCH_US;
}

export interface Column {
  name: string;
  typeOid: number;
  key: boolean;
}

export interface Relation {
  oid: number;
  schema: string;
  name: string;
  /** d default, n nothing, f full, i index. */
  identity: string;
  columns: Column[];
}

/** A transaction decoded into its segment block. */
export interface DecodedTransaction {
  /** The commit record's LSN (what headers name and targets compare with). */
  lsn: bigint;
  /** The end of the commit record: what the stream confirms once the transaction is durable. */
  endLsn: bigint;
  commitAt: string;
  xid: number;
  /** The header line and the block, ready to append to a segment. */
  text: string;
  /**
   * Set when the transaction's SQL outgrew a part (PART_BYTES) and comes in
   * several blocks, all with this header's LSN, time and xid: the first opens
   * with BEGIN, the last (`last`) ends with COMMIT, and each ends at a
   * statement's end. Unset for a transaction in one block.
   */
  part?: { index: number; last: boolean };
}

type Value = string | null | undefined; // undefined: unchanged TOAST

class Reader {
  at = 0;
  readonly buf: Buffer;
  constructor(buf: Buffer) {
    this.buf = buf;
  }
  u8(): number { return this.buf[this.at++]!; }
  i16(): number { const v = this.buf.readInt16BE(this.at); this.at += 2; return v; }
  i32(): number { const v = this.buf.readInt32BE(this.at); this.at += 4; return v; }
  u32(): number { const v = this.buf.readUInt32BE(this.at); this.at += 4; return v; }
  i64(): bigint { const v = this.buf.readBigInt64BE(this.at); this.at += 8; return v; }
  cstr(): string {
    const end = this.buf.indexOf(0, this.at);
    const s = this.buf.toString("utf8", this.at, end);
    this.at = end + 1;
    return s;
  }
  bytes(n: number): Buffer { const b = this.buf.subarray(this.at, this.at + n); this.at += n; return b; }
  char(): string { return String.fromCharCode(this.u8()); }
}

export const quoteIdent = (s: string) => `"${s.replace(/"/g, '""')}"`;

/** A text value as a one-line literal: E'…' with \\, ', CR and LF escaped. */
export function literal(v: string): string {
  const escaped = v.replace(/\\/g, "\\\\").replace(/'/g, "''").replace(/\n/g, "\\n").replace(/\r/g, "\\r");
  return `E'${escaped}'`;
}

/** The header line of a transaction block (the replay and the break-glass path both find blocks by it). */
export function headerLine(lsn: bigint, commitAt: string, xid: number, bytes: number, part?: DecodedTransaction["part"]): string {
  const split = part ? ` part=${part.index} ${part.last ? "last" : "more"}` : "";
  return `-- astrid:tx lsn=${lsnText(lsn)} commit=${commitAt} xid=${xid} bytes=${bytes}${split}\n`;
}

/**
 * A transaction's SQL beyond this is handed on in parts as it is decoded, so
 * neither the stream nor the replay ever holds a whole large transaction (a
 * bulk load of a night's detections can be gigabytes of SQL).
 */
export const PART_BYTES = 4 * 1024 * 1024;

/**
 * Turns pgoutput messages into transaction blocks. Relations are remembered
 * (a Relation message precedes a table's first change in each session and
 * follows any change of its definition); `onRelation` sees each one, so the
 * stream can tell a schema change it cannot replay.
 */
export class PgOutputDecoder {
  readonly relations = new Map<number, Relation>();
  private lines: string[] = [];
  /** Characters in `lines` (the part threshold's measure), and parts of the open transaction handed on so far. */
  private lineChars = 0;
  private parts = 0;
  /**
   * The INSERT statement being extended: consecutive inserts into one table
   * become one multi-row INSERT (same rows, same order, same checks; in an
   * INSERT, VALUES rows take the target columns' types), which the replay
   * runs several times faster than a statement per row.
   */
  private openInsert: { rel: Relation; rows: number; bytes: number } | undefined;
  private begin: { lsn: bigint; commitUs: bigint; xid: number } | undefined;
  /** Transactional logical messages of the current transaction (DDL capture), in order; cleared by the stream at each commit. */
  readonly messages: { prefix: string; content: string; transactional: boolean }[] = [];

  private readonly onRelation: (r: Relation) => void;
  private readonly partBytes: number;
  constructor(onRelation: (r: Relation) => void = () => {}, partBytes = PART_BYTES) {
    this.onRelation = onRelation;
    this.partBytes = partBytes;
  }

  /**
   * Decodes one pgoutput message; answers a finished transaction at its
   * Commit, or a part of a large one once its SQL reaches a part's size.
   */
  decode(payload: Buffer): DecodedTransaction | undefined {
    const block = this.decodeMessage(payload);
    if (block || !this.begin || this.lineChars < this.partBytes) return block;
    this.closeInsert();
    return this.block(this.begin.lsn, this.begin.lsn, this.begin.commitUs, this.begin.xid, false);
  }

  private decodeMessage(payload: Buffer): DecodedTransaction | undefined {
    const r = new Reader(payload);
    const type = r.char();
    if (type !== "I") this.closeInsert(); // only an INSERT right after one into the same table joins its statement
    switch (type) {
      case "B": {
        const lsn = r.i64();
        const commitUs = r.i64();
        const xid = r.i32();
        this.begin = { lsn: BigInt.asUintN(64, lsn), commitUs, xid };
        this.lines = [];
        this.lineChars = 0;
        this.parts = 0;
        this.openInsert = undefined;
        return undefined;
      }
      case "C": {
        r.u8();
        const commitLsn = BigInt.asUintN(64, r.i64());
        const endLsn = BigInt.asUintN(64, r.i64());
        const commitUs = r.i64();
        const xid = this.begin?.xid ?? 0;
        this.begin = undefined;
        return this.block(commitLsn, endLsn, commitUs, xid, true);
      }
      case "R": {
        const oid = r.u32();
        const schema = r.cstr();
        const name = r.cstr();
        const identity = r.char();
        const n = r.i16();
        const columns: Column[] = [];
        for (let i = 0; i < n; i++) {
          const flags = r.u8();
          const col = r.cstr();
          const typeOid = r.u32();
          r.i32(); // type modifier
          columns.push({ name: col, typeOid, key: (flags & 1) === 1 });
        }
        const rel = { oid, schema, name, identity, columns };
        this.relations.set(oid, rel);
        this.onRelation(rel);
        return undefined;
      }
      case "I": {
        const rel = this.relation(r.u32());
        r.char(); // 'N'
        const row = `(${tuple(r).map(sqlValue).join(", ")})`;
        const open = this.openInsert;
        if (open && open.rel === rel && open.rows < INSERT_MAX_ROWS && open.bytes + row.length <= INSERT_MAX_BYTES) {
          this.push(`,\n${row}`);
          open.rows++;
          open.bytes += row.length + 2;
        } else {
          this.closeInsert();
          const cols = rel.columns.map((c) => quoteIdent(c.name)).join(", ");
          const head = `INSERT INTO ${table(rel)} (${cols}) VALUES\n${row}`;
          this.push(head);
          this.openInsert = { rel, rows: 1, bytes: head.length };
        }
        return undefined;
      }
      case "U": {
        const rel = this.relation(r.u32());
        let kind = r.char();
        let old: Value[] | undefined;
        if (kind === "K" || kind === "O") {
          old = tuple(r);
          kind = r.char();
        }
        const values = tuple(r);
        const set = rel.columns.map((c, i) => (values[i] === undefined ? undefined : `${quoteIdent(c.name)} = ${sqlValue(values[i])}`)).filter(Boolean);
        if (set.length === 0) return undefined;
        this.push(`UPDATE ${table(rel)} SET ${set.join(", ")} WHERE ${this.where(rel, old ?? values, old !== undefined && rel.identity === "f")};\n`);
        return undefined;
      }
      case "D": {
        const rel = this.relation(r.u32());
        const kind = r.char();
        const old = tuple(r);
        this.push(`DELETE FROM ${table(rel)} WHERE ${this.where(rel, old, kind === "O")};\n`);
        return undefined;
      }
      case "T": {
        const n = r.i32();
        const options = r.u8();
        const names = Array.from({ length: n }, () => table(this.relation(r.u32())));
        this.push(`TRUNCATE ${names.join(", ")}${options & 2 ? " RESTART IDENTITY" : ""}${options & 1 ? " CASCADE" : ""};\n`);
        return undefined;
      }
      case "M": {
        const flags = r.u8();
        r.i64();
        const prefix = r.cstr();
        const len = r.i32();
        const content = r.bytes(len).toString("utf8");
        // Only a transactional message belongs to the transaction (the stream's own heartbeats are not: kept, they would pile up).
        if ((flags & 1) === 1 && this.begin) {
          this.messages.push({ prefix, content, transactional: true });
          // Captured DDL (the event trigger's message) runs in its place among the changes.
          if (prefix === DDL_MESSAGE_PREFIX) this.push(`${content.trim().replace(/;?$/, ";")}\n`);
        }
        return undefined;
      }
      default:
        return undefined; // Y (type), O (origin): nothing to replay
    }
  }

  /** SHA-256 over the tables and columns the stream has decoded, sorted: what a segment records as its schema. */
  fingerprint(): string {
    return schemaFingerprint([...this.relations.values()]);
  }

  /** The SQL decoded since the last block, as a block: the whole transaction, or its next part. */
  private block(lsn: bigint, endLsn: bigint, commitUs: bigint, xid: number, last: boolean): DecodedTransaction {
    const first = this.parts === 0;
    const body = `${first ? "BEGIN;\n" : ""}${this.lines.join("")}${last ? "COMMIT;\n" : ""}`;
    const part = last && first ? undefined : { index: ++this.parts, last };
    this.lines = [];
    this.lineChars = 0;
    if (last) this.parts = 0;
    const commitAt = pgTimeIso(commitUs);
    return { lsn, endLsn, commitAt, xid, text: headerLine(lsn, commitAt, xid, Buffer.byteLength(body), part) + body, ...(part ? { part } : {}) };
  }

  private push(line: string): void {
    this.lines.push(line);
    this.lineChars += line.length;
  }

  /** Ends the open multi-row INSERT, if any. */
  private closeInsert(): void {
    if (!this.openInsert) return;
    this.push(";\n");
    this.openInsert = undefined;
  }

  private relation(oid: number): Relation {
    const rel = this.relations.get(oid);
    if (!rel) throw new Error(`pgoutput: change for relation ${oid} before its Relation message`);
    return rel;
  }

  /** The row a change names: its key columns, or with REPLICA IDENTITY FULL every column of the old row. */
  private where(rel: Relation, values: Value[], full: boolean): string {
    const parts: string[] = [];
    rel.columns.forEach((c, i) => {
      if (!(full || c.key)) return;
      const v = values[i];
      if (v === undefined) return;
      parts.push(v === null ? `${quoteIdent(c.name)} IS NULL` : `${quoteIdent(c.name)} = ${literal(v)}`);
    });
    if (parts.length === 0) throw new Error(`pgoutput: ${rel.schema}.${rel.name} has no replica identity to find a row by`);
    // REPLICA IDENTITY FULL may match several equal rows where the source changed one: change one.
    if (full && !rel.columns.some((c) => c.key)) return `ctid = (SELECT ctid FROM ${table(rel)} WHERE ${parts.join(" AND ")} LIMIT 1)`;
    return parts.join(" AND ");
  }
}

/** Bounds of one multi-row INSERT: the replay sends a transaction as one query, and PostgreSQL parses a statement whole. */
const INSERT_MAX_ROWS = 1000;
const INSERT_MAX_BYTES = 1024 * 1024;

/** The logical-message prefix the DDL event trigger writes under (runner/continuous/ddl.ts). */
export const DDL_MESSAGE_PREFIX = "astrid_ddl";

function table(rel: Relation): string {
  return `${quoteIdent(rel.schema)}.${quoteIdent(rel.name)}`;
}

function sqlValue(v: Value): string {
  return v === null || v === undefined ? "NULL" : literal(v);
}

function tuple(r: Reader): Value[] {
  const n = r.i16();
  const values: Value[] = [];
  for (let i = 0; i < n; i++) {
    const kind = r.char();
    if (kind === "n") values.push(null);
    else if (kind === "u") values.push(undefined);
    else {
      const len = r.i32();
      values.push(r.bytes(len).toString("utf8"));
    }
  }
  return values;
}

/** Sorted "schema.table(col type, …)" lines hashed: equal for equal published schemas. */
export function schemaFingerprint(relations: { schema: string; name: string; columns: { name: string; typeOid: number }[] }[]): string {
  const lines = relations.map((r) => `${r.schema}.${r.name}(${r.columns.map((c) => `${c.name} ${c.typeOid}`).join(",")})`).sort();
  return createHash("sha256").update(lines.join("\n")).digest("hex");
}
