// The continuous-archiving capability's protocol (docs/continuous.md): the
// change-stream job (continuous.stream), the point-in-time restore
// (continuous.restore) and what the stream reports while it runs (a base
// backup taken, a segment made durable, a heartbeat with the slot's health).
// Imported by both sides.
import { z } from "zod";
import { BackupId, Lsn } from "../shared/format.ts";
import { DatabaseName, DispatchBase, WriteAccess } from "../shared/protocol.ts";
import { DatabaseBackupResult } from "../database/protocol.ts";

/**
 * Why a stream's job ended. Yielded and superseded: the stream goes on in a
 * new job. Rebased: a newer stream (its own slot and base) covers this one's
 * end, so the stream ends without a gap and drops its slot. The others end
 * the stream with a gap until the next stream's base.
 */
export const StreamEnd = z.enum(["yielded", "schema_changed", "slot_lost", "superseded", "rebased", "dropped", "failed"]);
export type StreamEnd = z.infer<typeof StreamEnd>;

/** A published table as the stream must decode it: what a Relation message is checked against. */
export const TableShape = z.object({
  schema: z.string(),
  name: z.string(),
  columns: z.array(z.object({ name: z.string(), typeOid: z.number().int() })),
});
export type TableShape = z.infer<typeof TableShape>;

export const ContinuousStreamParams = z.object({
  database: DatabaseName,
  /** The stream: its base backup's id (minted when the stream is new). */
  stream_id: BackupId,
  /** Create the slot and take the base; false resumes an existing stream from its slot. */
  new_stream: z.boolean(),
  /** Protection dropped: drop the slot, the publication and the DDL capture, and end the stream. */
  drop: z.boolean().default(false),
});
export type ContinuousStreamParams = z.infer<typeof ContinuousStreamParams>;

export const ContinuousStreamDispatch = DispatchBase.extend({
  ...WriteAccess.shape,
  kind: z.literal("continuous.stream"),
  database: DatabaseName,
  stream_id: BackupId,
  new_stream: z.boolean(),
  drop: z.boolean(),
  source_url: z.string().min(1),
  slot_name: z.string().regex(/^[a-z0-9_]{1,63}$/),
  publication_name: z.string().regex(/^[a-z0-9_]{1,63}$/),
  /** The next segment's number. */
  next_seq: z.number().int().nonnegative(),
  /** Transactions committed at or before this LSN are already in recorded segments (a resumed stream skips them). */
  resume_after_lsn: Lsn.optional(),
  /** Slots of the database's ended streams: a new stream drops any still there (a job that died, a stream ended by a schema change). */
  retired_slots: z.array(z.string().regex(/^[a-z0-9_]{1,63}$/)).default([]),
  /** The schema of record (resumed stream): tables and columns the segments replay onto. */
  schema: z.array(TableShape).optional(),
  segment_seconds: z.number().int().positive(),
  segment_max_bytes: z.number().int().positive(),
  heartbeat_seconds: z.number().int().positive(),
  /** Install the DDL event trigger (docs/continuous.md). */
  capture_ddl: z.boolean(),
});
export type ContinuousStreamDispatch = z.infer<typeof ContinuousStreamDispatch>;

export const ContinuousStreamResult = z.object({
  kind: z.literal("continuous.stream"),
  stream_id: BackupId,
  ended: StreamEnd,
  detail: z.string().optional(),
  segments: z.number().int().nonnegative(),
  confirmed_lsn: Lsn.optional(),
});
export type ContinuousStreamResult = z.infer<typeof ContinuousStreamResult>;

// ---- What the stream reports while it runs (under /repo/v1/continuous, with its job token) ----

export const BaseReport = z.object({
  stream_id: BackupId,
  slot_name: z.string(),
  consistent_lsn: Lsn,
  consistent_at: z.string(),
  schema: z.array(TableShape),
  schema_fingerprint: z.string().regex(/^[0-9a-f]{64}$/),
  /** Tables left out of the publication (no primary key or replica identity), each with the statement that would include them. */
  uncovered: z.array(z.object({ table: z.string(), fix: z.string() })),
  ddl_captured: z.boolean(),
  backup: DatabaseBackupResult,
});
export type BaseReport = z.infer<typeof BaseReport>;

export const SegmentReport = z.object({
  stream_id: BackupId,
  seq: z.number().int().nonnegative(),
  manifest_key: z.string(),
  start_lsn: Lsn,
  end_lsn: Lsn,
  /** The LSN the runner confirms to the server once this report is accepted. */
  confirm_lsn: Lsn,
  first_commit_at: z.string().nullable(),
  last_commit_at: z.string().nullable(),
  transactions: z.number().int().nonnegative(),
  covered_until: z.string(),
  logical_bytes: z.number().int().nonnegative(),
  stored_bytes: z.number().int().nonnegative(),
  sha256: z.string(),
  /** The schema of record after this segment (changed by captured DDL). */
  schema: z.array(TableShape),
});
export type SegmentReport = z.infer<typeof SegmentReport>;

export const SlotHealth = z.object({
  /** pg_replication_slots.wal_status: reserved, extended, unreserved, lost. */
  wal_status: z.string().nullable(),
  safe_wal_size: z.number().nullable(),
  retained_bytes: z.number().nullable(),
  lag_bytes: z.number().nullable(),
});
export type SlotHealth = z.infer<typeof SlotHealth>;

export const HeartbeatReport = z.object({
  stream_id: BackupId,
  /** Set when everything received so far is durable: every commit before this time is in a recorded segment. */
  covered_until: z.string().optional(),
  slot: SlotHealth,
});
export type HeartbeatReport = z.infer<typeof HeartbeatReport>;

/**
 * The heartbeat's answer: stop (finishing the open segment) when an exclusive
 * job waits, another job holds the stream, or a newer stream of the database
 * has taken over (then the slot is dropped too).
 */
export const HeartbeatAnswer = z.object({ stop: z.enum(["yield", "superseded", "rebased"]).optional() });
export type HeartbeatAnswer = z.infer<typeof HeartbeatAnswer>;

// ---- Point-in-time restore ----

export const PitrTarget = z.union([
  z.object({ target_time: z.string() }),
  z.object({ target_lsn: Lsn }),
]);

export const ContinuousRestoreParams = z.object({
  database: DatabaseName,
  stream_id: BackupId,
  target_time: z.string().optional(),
  target_lsn: Lsn.optional(),
  target_label: z.string(),
  target_database: DatabaseName.optional(),
  target_url_sealed: z.string().optional(),
  replace: z.boolean(),
});
export type ContinuousRestoreParams = z.infer<typeof ContinuousRestoreParams>;

export const ContinuousRestoreDispatch = DispatchBase.extend({
  kind: z.literal("continuous.restore"),
  stream_id: BackupId,
  base_manifest_key: z.string().min(1),
  /** The stream's segments in order, up to the first one whose last commit is past the target. */
  segment_keys: z.array(z.string()),
  target_time: z.string().optional(),
  target_lsn: Lsn.optional(),
  target_url: z.string().min(1),
  replace: z.boolean(),
  identities: z.array(z.string()).min(1),
  chunk_id_key: z.string().regex(/^[0-9a-f]{64}$/).optional(),
});
export type ContinuousRestoreDispatch = z.infer<typeof ContinuousRestoreDispatch>;

export const ContinuousRestoreResult = z.object({
  kind: z.literal("continuous.restore"),
  backup_id: z.string(),
  target_database: z.string(),
  /** The last transaction replayed: the point the restored database is at. */
  achieved_lsn: Lsn.nullable(),
  achieved_time: z.string().nullable(),
  transactions: z.number().int().nonnegative(),
  base_ms: z.number().nonnegative(),
  replay_ms: z.number().nonnegative(),
  duration_ms: z.number().nonnegative(),
});
export type ContinuousRestoreResult = z.infer<typeof ContinuousRestoreResult>;

/** An ISO time as microseconds since the Unix epoch (commit times carry microseconds); undefined when it is not a time. */
export function parseMicros(iso: string): bigint | undefined {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return undefined;
  const fraction = /T[^.]*\.(\d+)/.exec(iso)?.[1] ?? "";
  return BigInt(ms) * 1000n + BigInt((fraction + "000000").slice(3, 6));
}

export function isoMicros(iso: string): bigint {
  const v = parseMicros(iso);
  if (v === undefined) throw new Error(`not a time: ${iso}`);
  return v;
}
