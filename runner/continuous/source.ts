// What the change stream asks of the source database besides the stream
// itself: its publication (the tables that can be streamed), the tables'
// shape in the slot's snapshot, sequence values, and the slot's health.
import type { SlotHealth, TableShape } from "../../workers/continuous/protocol.ts";
import { PgWire } from "../database/pg-wire.ts";
import { quoteIdent } from "./pgoutput.ts";

const quoteLiteral = (s: string) => `'${s.replace(/'/g, "''")}'`;

// User tables (and partitioned roots; their partitions publish through the
// root) that no extension owns. Replicable: a primary key, or a replica
// identity of FULL or an index. Publishable: owned by a role we are a member of.
const TABLES = `
  SELECT c.oid, n.nspname, c.relname,
         (c.relreplident IN ('f', 'i') OR (c.relreplident = 'd' AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))) AS replicable,
         pg_has_role(c.relowner, 'USAGE') AS owned
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
     AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
     AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
   ORDER BY n.nspname, c.relname`;

export interface Published {
  /** Oids of the published tables. */
  tables: string[];
  uncovered: { table: string; fix: string }[];
}

/**
 * Creates the publication over every replicable table, or sets an existing one's tables to them. A table without a
 * primary key or replica identity is left out (publishing it would make the
 * source refuse its UPDATEs and DELETEs) and reported with the statement that
 * would include it; such a table is covered by the base backups only.
 */
export async function ensurePublication(sql: PgWire, name: string): Promise<Published> {
  const rows = await sql.query(TABLES);
  const tables: string[] = [];
  const names: string[] = [];
  const uncovered: Published["uncovered"] = [];
  for (const [oid, schema, table, replicable, owned] of rows) {
    const qualified = `${quoteIdent(schema!)}.${quoteIdent(table!)}`;
    if (replicable === "t" && owned === "t") {
      tables.push(oid!);
      names.push(qualified);
    } else if (owned !== "t") {
      uncovered.push({ table: `${schema}.${table}`, fix: `-- owned by another role: covered by the base backups only` });
    } else {
      uncovered.push({ table: `${schema}.${table}`, fix: `ALTER TABLE ${qualified} REPLICA IDENTITY FULL; -- or add a primary key` });
    }
  }
  // Altered in place, never dropped: during a re-base the old stream's walsender still decodes through it.
  const [exists] = await sql.query(`SELECT 1 FROM pg_publication WHERE pubname = ${quoteLiteral(name)}`);
  if (!exists) {
    await sql.query(`CREATE PUBLICATION ${quoteIdent(name)}${names.length ? ` FOR TABLE ${names.join(", ")}` : ""} WITH (publish_via_partition_root = true)`);
  } else {
    await sql.query(`ALTER PUBLICATION ${quoteIdent(name)} SET (publish = 'insert, update, delete, truncate', publish_via_partition_root = true)`);
    if (names.length) await sql.query(`ALTER PUBLICATION ${quoteIdent(name)} SET TABLE ${names.join(", ")}`);
    else {
      const published = await sql.query(`SELECT format('%I.%I', schemaname, tablename) FROM pg_publication_tables WHERE pubname = ${quoteLiteral(name)}`);
      if (published.length) await sql.query(`ALTER PUBLICATION ${quoteIdent(name)} DROP TABLE ${published.map(([t]) => t).join(", ")}`);
    }
  }
  return { tables, uncovered };
}

/** The published tables' columns as pgoutput will describe them, read in the slot's exported snapshot. */
export async function shapeInSnapshot(url: string, snapshot: string, oids: string[]): Promise<TableShape[]> {
  if (oids.length === 0) return [];
  const db = await PgWire.connect(url);
  try {
    const rows = await db.query(`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;
      SET TRANSACTION SNAPSHOT ${quoteLiteral(snapshot)};
      SELECT n.nspname, c.relname, a.attname, a.atttypid
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid
       WHERE c.oid IN (${oids.join(",")}) AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
       ORDER BY n.nspname, c.relname, a.attnum;
      COMMIT;`);
    const shapes = new Map<string, TableShape>();
    for (const [schema, name, column, type] of rows) {
      const key = `${schema}.${name}`;
      let shape = shapes.get(key);
      if (!shape) shapes.set(key, (shape = { schema: schema!, name: name!, columns: [] }));
      shape.columns.push({ name: column!, typeOid: Number(type) });
    }
    return [...shapes.values()];
  } finally {
    await db.close();
  }
}

/** Every user sequence's last value ("schema"."name" quoted, as setval takes it). */
export async function readSequences(sql: PgWire): Promise<Record<string, string>> {
  const rows = await sql.query(`SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename), last_value
    FROM pg_sequences WHERE last_value IS NOT NULL AND schemaname NOT IN ('pg_catalog', 'information_schema')`);
  return Object.fromEntries(rows.map(([name, value]) => [name!, value!]));
}

/** The slot as the server sees it; wal_status null when the slot does not exist. */
export async function slotHealth(sql: PgWire, slot: string): Promise<SlotHealth> {
  const [row] = await sql.query(`SELECT wal_status, safe_wal_size,
      pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint, pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint
    FROM pg_replication_slots WHERE slot_name = ${quoteLiteral(slot)}`);
  const num = (v: string | null | undefined) => (v === null || v === undefined ? null : Number(v));
  if (!row) return { wal_status: null, safe_wal_size: null, retained_bytes: null, lag_bytes: null };
  return { wal_status: row[0] ?? null, safe_wal_size: num(row[1]), retained_bytes: num(row[2]), lag_bytes: num(row[3]) };
}

/** Drops the slot (after cutting off any consumer still attached) and the publication: continuous protection turned off. */
export async function dropStreamObjects(sql: PgWire, slot: string, publication: string): Promise<void> {
  await dropSlot(sql, slot);
  await sql.query(`DROP PUBLICATION IF EXISTS ${quoteIdent(publication)}`);
}

/** Drops a slot if it exists, cutting off any consumer still attached to it. */
export async function dropSlot(sql: PgWire, slot: string): Promise<void> {
  await sql.query(`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = ${quoteLiteral(slot)} AND active_pid IS NOT NULL`);
  for (let attempt = 0; ; attempt++) {
    try {
      await sql.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = ${quoteLiteral(slot)}`);
      break;
    } catch (e) {
      // A terminated walsender may take a moment to release the slot (object_in_use).
      if (attempt >= 20 || (e as { sqlstate?: string }).sqlstate !== "55006") throw e;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}
