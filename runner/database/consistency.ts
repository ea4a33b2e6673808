// validate_data_consistency: what a database holds, reduced to something a
// restored copy can be compared with table by table. Per relation a row count
// and an order-independent checksum (a sum of per-row hashes), plus the SHA-256
// of a normalised schema-only dump. At backup time all of it is taken in the
// very snapshot pg_dump reads (pg_export_snapshot + pg_dump --snapshot), so a
// busy source cannot make the record and the dump disagree; a drill computes
// the same on the restored database (runner/dr/drill.ts).
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { createHash } from "node:crypto";
import type { ConsistencyMethod, ConsistencyRecord } from "../../workers/shared/format.ts";
import { AppError } from "../../workers/shared/errors.ts";
import { classifyPgError, exitOf, stderrTail, toolEnv } from "./pg-tools.ts";

/** Per relation key: row count (or a sequence's last_value; 0 for views and extensions) and checksum. */
export type Fingerprints = Record<string, { rows: number; checksum: string }>;

/** What new records use. */
export const CONSISTENCY_METHOD = "row-hashtext-sum" satisfies ConsistencyMethod;

// Row text depends on session settings, so pin every one that affects it:
// otherwise two servers with different defaults would disagree on equal data.
const SESSION_SQL = `
  SET TimeZone = 'UTC';
  SET DateStyle = 'ISO, YMD';
  SET IntervalStyle = 'postgres';
  SET extra_float_digits = 1;
  SET bytea_output = 'hex';`;

// ROW(t.*) rather than plain t, which would mean a column if one is named t.
// A table's checksum is order-independent: the sum of a hash of each row's
// text, summed as numeric so nothing overflows. Unlike a hash of
// string_agg(... ORDER BY ...) this needs no sort and no single value holding
// the whole table, which PostgreSQL caps at 1 GB; and it still counts
// duplicate rows. Rendering the rows as text is most of the cost either way.
const TABLE_HASH: Record<ConsistencyMethod, string> = {
  // hashtextextended: PostgreSQL's 64-bit hash of text (the one hash
  // partitioning uses, so it stays the same across versions, though not across
  // byte orders). A third of md5's CPU on the bench database (docs/dr.md).
  "row-hashtext-sum": `
  SELECT %L, count(*), coalesce(sum(hashtextextended(ROW(t.*)::text, 0)), 0) FROM %I.%I AS t`,
  // The first records': md5 per row, its two 64-bit halves summed, then md5 of the two sums.
  "row-md5-sum": `
  SELECT %L, count(*), md5(coalesce(sum(('x' || left(h, 16))::bit(64)::bigint::numeric), 0)
                           || ':' || coalesce(sum(('x' || right(h, 16))::bit(64)::bigint::numeric), 0))
    FROM (SELECT md5(ROW(t.*)::text) AS h FROM %I.%I AS t) AS rows`,
};

// Relations of user schemas that no extension owns.
const USER_RELATIONS = `
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\\_toast%'
   AND n.nspname NOT LIKE 'pg\\_temp%'
   AND c.relispopulated
   AND NOT EXISTS (SELECT FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`;

/**
 * Prints "key|rows|checksum" per relation. Keys are "schema.table" for tables
 * and materialized views (content), "view:schema.name" (definition),
 * "sequence:schema.name" (last_value and is_called) and "extension:name"
 * (version and schema); the last three are small, an md5 whatever the method.
 * \gexec runs each generated query.
 */
export const fingerprintSql = (method: ConsistencyMethod) => `
  ${SESSION_SQL}
  SELECT format($q$${TABLE_HASH[method]}$q$, n.nspname || '.' || c.relname, n.nspname, c.relname)
  ${USER_RELATIONS} AND c.relkind IN ('r', 'm')
  ORDER BY 1 \\gexec

  SELECT format('SELECT %L, last_value, md5(last_value || '':'' || is_called) FROM %I.%I',
                'sequence:' || n.nspname || '.' || c.relname, n.nspname, c.relname)
  ${USER_RELATIONS} AND c.relkind = 'S'
  ORDER BY 1 \\gexec

  SELECT 'view:' || n.nspname || '.' || c.relname, 0, md5(pg_get_viewdef(c.oid))
  ${USER_RELATIONS} AND c.relkind = 'v';

  SELECT 'extension:' || e.extname, 0, md5(e.extversion || ':' || n.nspname)
    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace;`;

/** psql's "key|rows|checksum" lines -> fingerprints. Split from the right: only the key could contain the separator. */
export function parseFingerprints(output: string): Fingerprints {
  const out: Fingerprints = {};
  for (const line of output.split("\n").filter(Boolean)) {
    const [checksum, rows, ...key] = line.split("|").reverse();
    out[key.reverse().join("|")] = { rows: Number(rows), checksum: checksum ?? "" };
  }
  return out;
}

/** A record's fingerprints and the method to compute a restored copy's with. */
export function recordedFingerprints(record: ConsistencyRecord): { method: ConsistencyMethod; tables: Fingerprints } {
  if ("method" in record) return { method: record.method, tables: record.tables };
  const tables: Fingerprints = {};
  for (const [key, { rows, md5 }] of Object.entries(record.tables)) tables[key] = { rows, checksum: md5 };
  return { method: "row-md5-sum", tables };
}

/** Mismatches, one line per relation, in key order; empty when the two agree. */
export function compareFingerprints(expected: Fingerprints, actual: Fingerprints): string[] {
  const problems: string[] = [];
  for (const key of [...new Set([...Object.keys(expected), ...Object.keys(actual)])].sort()) {
    const e = expected[key];
    const a = actual[key];
    if (!a) problems.push(`table ${key}: missing from the restored database (${e!.rows} rows in the backup)`);
    else if (!e) problems.push(`table ${key}: in the restored database but not in the backup`);
    else if (e.rows !== a.rows) problems.push(`table ${key}: ${a.rows} rows restored, ${e.rows} in the backup`);
    else if (e.checksum !== a.checksum) problems.push(`table ${key}: same ${a.rows} rows counted but their content checksum differs`);
  }
  return problems;
}

/** Runs a SQL script through psql's stdin (\gexec needs a script, not -c). */
export async function psqlScript(url: string, sql: string): Promise<string> {
  const child = spawn("psql", ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", "-"], { env: toolEnv(url), stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
  const tail = stderrTail(child);
  const exited = exitOf(child);
  child.stdin.end(sql);
  const { code } = await exited.catch((e: Error) => {
    throw new AppError("tool_missing", `cannot run psql: ${e.message}`);
  });
  if (code !== 0) throw classifyPgError("psql", tail(), url);
  return out;
}

export async function fingerprintDatabase(url: string, method: ConsistencyMethod = CONSISTENCY_METHOD): Promise<Fingerprints> {
  return parseFingerprints(await psqlScript(url, fingerprintSql(method)));
}

/**
 * SHA-256 of the schema-only dump without what legitimately differs between a
 * source and its restored copy: comments, SET lines, psql's per-dump
 * \restrict keys, ownership and grants (restores run --no-owner --no-privileges).
 */
export async function schemaHash(url: string, snapshot?: string): Promise<string> {
  const args = ["--schema-only", "--no-owner", "--no-privileges", "--no-password", ...(snapshot ? [`--snapshot=${snapshot}`] : [])];
  const dump = spawn("pg_dump", args, { env: toolEnv(url), stdio: ["ignore", "pipe", "pipe"] });
  const tail = stderrTail(dump);
  const exited = exitOf(dump);
  let text = "";
  dump.stdout.setEncoding("utf8").on("data", (d: string) => (text += d));
  const { code } = await exited;
  if (code !== 0) throw classifyPgError("pg_dump", tail(), url);
  return createHash("sha256").update(normaliseSchema(text)).digest("hex");
}

export function normaliseSchema(text: string): string {
  return text.split("\n")
    .filter((l) => l.trim() !== "" && !l.startsWith("--") && !/^(SET |SELECT pg_catalog\.set_config|\\restrict|\\unrestrict)/.test(l))
    .join("\n");
}

/**
 * A transaction holding an exported snapshot: pg_dump --snapshot reads it,
 * and the record is computed inside it. Closed (committed) only after both
 * are done, since pg_dump must import the snapshot while it is still exported.
 */
export interface SnapshotSession {
  id: string;
  record(): Promise<ConsistencyRecord>;
  close(): void;
}

const END = "astrid-end-of-fingerprints";

export async function openSnapshot(url: string): Promise<SnapshotSession> {
  const child: ChildProcessWithoutNullStreams = spawn("psql", ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", "-"], {
    env: toolEnv(url), stdio: ["pipe", "pipe", "pipe"],
  });
  const tail = stderrTail(child);
  const exited = exitOf(child);
  let buffered = "";
  let waiter: { marker: string; resolve: (s: string) => void } | undefined;
  const check = () => {
    if (!waiter) return;
    const at = buffered.indexOf(waiter.marker);
    if (at < 0) return;
    const before = buffered.slice(0, at);
    buffered = buffered.slice(at + waiter.marker.length);
    const w = waiter;
    waiter = undefined;
    w.resolve(before);
  };
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    buffered += d;
    check();
  });
  const until = (marker: string) => Promise.race([
    new Promise<string>((resolve) => {
      waiter = { marker, resolve };
      check();
    }),
    exited.then(() => {
      throw classifyPgError("psql", tail(), url);
    }),
  ]);
  child.stdin.on("error", () => {}); // psql gone: `until` reports why
  child.stdin.write(`BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;\nSELECT 'snapshot=' || pg_export_snapshot() || ';';\n`);
  const line = await until(";\n");
  const id = /snapshot=(\S+)$/.exec(line.trim())?.[1];
  if (!id) {
    child.kill("SIGTERM");
    throw new AppError("snapshot_failed", "could not export a snapshot for the consistency record");
  }
  return {
    id,
    async record() {
      const started = Date.now();
      const schema = schemaHash(url, id);
      child.stdin.write(`${fingerprintSql(CONSISTENCY_METHOD)}\nSELECT '${END}';\n`);
      const tables = parseFingerprints(await until(`${END}\n`));
      return { method: CONSISTENCY_METHOD, tables, schema_sha256: await schema, duration_ms: Date.now() - started };
    },
    close() {
      child.stdin.end("COMMIT;\n");
    },
  };
}
