// continuous.restore: point-in-time recovery. The stream's base is restored
// through the database restore (same target checks: emptiness, the replace
// guard), then the segments are replayed transaction by transaction, up to the
// last commit at or before the target time (or LSN), into the target database.
//
// Idempotent: each replayed transaction also records its commit LSN in
// astrid_pitr.applied, inside the same transaction, so a replay that is
// interrupted and run again skips exactly what was applied. Sequences are set
// at the end from the values the last replayed segment recorded; the
// bookkeeping schema and the source's stream objects are then removed.
import type { ContinuousRestoreDispatch, ContinuousRestoreResult } from "../../workers/continuous/protocol.ts";
import { SegmentManifest } from "../../workers/shared/format.ts";
import { AppError } from "../../workers/shared/errors.ts";
import type { JobContext } from "../job-context.ts";
import { restoreDatabase } from "../database/restore.ts";
import { dumpStream } from "../database/plaintext.ts";
import { PgWire } from "../database/pg-wire.ts";
import { readManifestFile } from "../repository/manifest-file.ts";
import { parseLsn } from "./pgoutput.ts";
import { isoMicros, segmentTransactions } from "./segment-text.ts";
import { DDL_TRIGGER, removeDdlCapture } from "./ddl.ts";

const STATE = "astrid_pitr";

export async function restorePointInTime(job: ContinuousRestoreDispatch, ctx: JobContext): Promise<ContinuousRestoreResult> {
  const started = Date.now();
  const targetTime = job.target_time ? isoMicros(job.target_time) : undefined;
  const targetLsn = job.target_lsn ? parseLsn(job.target_lsn) : undefined;
  let resumed = await appliedLsn(job.target_url);
  let targetDatabase = "";
  if (resumed === undefined) {
    const base = await restoreDatabase({
      kind: "database.restore", job_id: job.job_id, repository: job.repository, backup_id: job.stream_id, manifest_key: job.base_manifest_key,
      target_url: job.target_url, replace: job.replace, identities: job.identities, ...(job.chunk_id_key ? { chunk_id_key: job.chunk_id_key } : {}),
    }, ctx);
    targetDatabase = base.target_database;
  }
  const baseMs = Date.now() - started;
  const db = await PgWire.connect(job.target_url);
  let transactions = 0;
  let achieved: { lsn: string; at: string } | null = null;
  try {
    targetDatabase ||= (await db.query("SELECT current_database()"))[0]![0]!;
    // Replayed rows already carry what the source's triggers did: as logical replication's apply does, fire none (needs superuser).
    await db.query("SET session_replication_role = replica").catch((e: Error) => console.warn(`pitr: triggers stay on during replay (${e.message})`));
    await db.query("SET synchronous_commit = off"); // a lost tail is re-applied: its LSN record is lost with it
    await db.query(`DROP EVENT TRIGGER IF EXISTS ${DDL_TRIGGER}`);
    if (resumed === undefined) {
      await db.query(`CREATE SCHEMA ${STATE}; CREATE TABLE ${STATE}.applied (lsn pg_lsn NOT NULL); INSERT INTO ${STATE}.applied VALUES ('0/0')`);
      resumed = 0n;
    }
    let sequences: Record<string, string> = {};
    let reached = false;
    for (const [i, key] of job.segment_keys.entries()) {
      if (reached) break;
      const segment = await readManifestFile(ctx.repository, key, SegmentManifest);
      if (segment.backup_id !== job.stream_id) throw new AppError("manifest_invalid", `${key} belongs to stream ${segment.backup_id}`);
      const plaintext = dumpStream(ctx.repository, { ...segment, dump: { sha256: segment.payload.sha256 } }, job.identities, () => {}, job.chunk_id_key);
      let replayedHere = false;
      /** A large transaction comes in parts (docs/format.md): BEGIN with the first, COMMIT with the last, one query each. */
      let open = false;
      for await (const tx of segmentTransactions(plaintext)) {
        if ((targetTime !== undefined && isoMicros(tx.commitAt) > targetTime) || (targetLsn !== undefined && tx.lsn > targetLsn)) {
          reached = true;
          continue; // read to the end anyway: the segment's checksum is checked over its whole payload
        }
        replayedHere = true;
        const first = !tx.part || tx.part.index === 1;
        const last = !tx.part || tx.part.last;
        if (first === open) throw new AppError("segment_invalid", `${key}: the parts of the transaction at LSN ${tx.lsnText} are out of order`);
        open = !last;
        if (last) achieved = { lsn: tx.lsnText, at: tx.commitAt };
        if (tx.lsn <= resumed) continue;
        const inner = tx.block.slice(first ? "BEGIN;\n".length : 0, tx.block.length - (last ? "COMMIT;\n".length : 0));
        const applied = last ? `UPDATE ${STATE}.applied SET lsn = '${tx.lsnText}';\nCOMMIT;` : "";
        await db.query(`${first ? "BEGIN;\n" : ""}${inner}${applied}`).catch(async (e: Error) => {
          await db.query("ROLLBACK").catch(() => {});
          throw new AppError("replay_failed", `replaying the transaction committed at ${tx.commitAt} (LSN ${tx.lsnText}) failed: ${e.message}`);
        });
        if (!last) continue;
        transactions++;
        ctx.progress({ phase: `replaying segment ${i + 1}/${job.segment_keys.length}`, bytes: 0, chunks: transactions });
      }
      if (open) {
        await db.query("ROLLBACK").catch(() => {});
        throw new AppError("segment_invalid", `${key} ends inside a transaction`);
      }
      if (replayedHere || i === 0) sequences = segment.sequences;
    }
    await setSequences(db, sequences);
    await db.query(`DROP SCHEMA ${STATE} CASCADE`);
    await removeDdlCapture(db);
    await db.query(`DO $$ DECLARE p record; BEGIN FOR p IN SELECT pubname FROM pg_publication WHERE pubname LIKE 'astrid\\_%' LOOP EXECUTE format('DROP PUBLICATION %I', p.pubname); END LOOP; END $$`);
  } finally {
    await db.close();
  }
  const finished = Date.now();
  return {
    kind: "continuous.restore", backup_id: job.stream_id, target_database: targetDatabase,
    achieved_lsn: achieved?.lsn ?? null, achieved_time: achieved?.at ?? null, transactions,
    base_ms: baseMs, replay_ms: finished - started - baseMs, duration_ms: finished - started,
  };
}

/** The LSN a previous run of this replay reached in the target, or undefined when none started there. */
async function appliedLsn(url: string): Promise<bigint | undefined> {
  let db: PgWire;
  try {
    db = await PgWire.connect(url);
  } catch (e) {
    if ((e as AppError).code === "database_missing") return undefined;
    throw e;
  }
  try {
    // Two statements: a query naming a missing table fails when parsed, whatever its WHERE says.
    const [exists] = await db.query(`SELECT to_regclass('${STATE}.applied') IS NOT NULL`);
    if (exists?.[0] !== "t") return undefined;
    const [row] = await db.query(`SELECT lsn::text FROM ${STATE}.applied LIMIT 1`);
    return row?.[0] ? parseLsn(row[0]) : undefined;
  } finally {
    await db.close();
  }
}

/** Sequences as the last replayed segment recorded them (never behind the replayed rows); a sequence the target lacks is skipped. */
async function setSequences(db: PgWire, sequences: Record<string, string>): Promise<void> {
  for (const [name, value] of Object.entries(sequences)) {
    if (!/^-?\d+$/.test(value)) continue;
    const literal = name.replace(/'/g, "''");
    await db.query(`SELECT setval(to_regclass('${literal}'), ${value}, true) WHERE to_regclass('${literal}') IS NOT NULL`);
  }
}

