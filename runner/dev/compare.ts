// Fingerprints a database's contents so a restored copy can be compared with
// its source: equal fingerprints mean equal data, down to float bits.
import { psql } from "./postgres.ts";

export interface Fingerprint {
  /** Tables: row count. Sequences: last_value. Views and extensions: 0. */
  rows: number;
  md5: string;
}

/**
 * Keys are "schema.table" for tables and materialized views (content),
 * "view:schema.name" (definition), "sequence:schema.name" (last_value and
 * is_called) and "extension:name" (version and schema). Objects that belong
 * to an extension are left to the extension's entry.
 */
export async function tableFingerprints(url: string): Promise<Record<string, Fingerprint>> {
  const output = await psql(url, FINGERPRINT_SQL);
  const fingerprints: Record<string, Fingerprint> = {};
  for (const line of output.split("\n").filter(Boolean)) {
    // Split from the right: only the key could contain the separator.
    const [md5, rows, ...key] = line.split("|").reverse();
    fingerprints[key.reverse().join("|")] = { rows: Number(rows), md5: md5 ?? "" };
  }
  return fingerprints;
}

// Row text depends on session settings, so pin every one that affects it:
// otherwise two servers with different defaults would disagree on equal data.
const SESSION_SQL = `
  SET TimeZone = 'UTC';
  SET DateStyle = 'ISO, YMD';
  SET IntervalStyle = 'postgres';
  SET extra_float_digits = 1;
  SET bytea_output = 'hex';`;

// ROW(t.*) rather than plain t, which would mean a column if one is named t.
// A table's hash is order-independent: the sum of its rows' md5s (two 64-bit
// halves, summed as numeric so nothing overflows). Unlike md5(string_agg(...
// ORDER BY ...)) this needs no sort and no single value holding the whole
// table, which PostgreSQL caps at 1 GB; and it still counts duplicate rows.
const TABLE_HASH = `
  SELECT %L, count(*), md5(coalesce(sum(('x' || left(h, 16))::bit(64)::bigint::numeric), 0)
                           || ':' || coalesce(sum(('x' || right(h, 16))::bit(64)::bigint::numeric), 0))
    FROM (SELECT md5(ROW(t.*)::text) AS h FROM %I.%I AS t) AS rows`;

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

// \\gexec runs each generated query; every one prints "key|rows|md5".
const FINGERPRINT_SQL = `
  ${SESSION_SQL}
  SELECT format($q$${TABLE_HASH}$q$, n.nspname || '.' || c.relname, n.nspname, c.relname)
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
