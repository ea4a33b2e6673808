// The D1 catalog. It is an index for operators, not the source of truth: every
// backup row can be rebuilt from the manifests in R2 (docs/format.md).
import { sqliteTable, text, integer, index, uniqueIndex } from "drizzle-orm/sqlite-core";

export const jobs = sqliteTable(
  "jobs",
  {
    id: text("id").primaryKey(),
    kind: text("kind").notNull(),
    status: text("status", { enum: ["queued", "running", "succeeded", "failed"] }).notNull(),
    /** JSON of the kind's params schema (protocol.ts); never a secret. */
    params: text("params").notNull(),
    backup_id: text("backup_id"),
    requested_by: text("requested_by").notNull(),
    attempts: integer("attempts").notNull().default(0),
    progress: text("progress"),
    /** Jobs with the same key never run side by side (the kind's concurrencyKey, e.g. one backup per database). */
    concurrency_key: text("concurrency_key"),
    /** Why a queued job waits (an exclusive job, the running job of its key, a full runner); cleared when it starts. */
    queued_reason: text("queued_reason"),
    /** Jobs the Worker runs itself in steps (storage.*): the step in hand and its resume state. */
    step: integer("step").notNull().default(0),
    state: text("state"),
    result: text("result"),
    error_code: text("error_code"),
    error_message: text("error_message"),
    created_at: text("created_at").notNull(),
    started_at: text("started_at"),
    heartbeat_at: text("heartbeat_at"),
    finished_at: text("finished_at"),
  },
  (t) => [index("jobs_status_idx").on(t.status, t.created_at)],
);

export const backups = sqliteTable(
  "backups",
  {
    id: text("id").primaryKey(),
    /** database: a PostgreSQL dump; ml: an MLflow server export; training_data: a dataset snapshot. */
    domain: text("domain", { enum: ["database", "ml", "training_data"] }).notNull(),
    /** What was backed up: the database name; for ml the MLflow server's name, for training_data the dataset id. */
    source: text("source").notNull(),
    type: text("type", { enum: ["full", "incremental", "archive"] }).notNull(),
    /** completed: manifest written and checked; corrupt: a verify found damage. */
    status: text("status", { enum: ["completed", "corrupt"] }).notNull(),
    manifest_key: text("manifest_key").notNull(),
    logical_bytes: integer("logical_bytes").notNull(),
    stored_bytes: integer("stored_bytes").notNull(),
    new_stored_bytes: integer("new_stored_bytes").notNull(),
    chunk_count: integer("chunk_count").notNull(),
    sha256: text("sha256").notNull(),
    job_id: text("job_id"),
    created_at: text("created_at").notNull(),
    finished_at: text("finished_at").notNull(),
    duration_ms: integer("duration_ms").notNull(),
    verified_at: text("verified_at"),
    verify_depth: text("verify_depth"),
    verify_status: text("verify_status", { enum: ["passed", "failed"] }),
    verify_detail: text("verify_detail"),
    last_restore_ms: integer("last_restore_ms"),
  },
  (t) => [index("backups_source_created_idx").on(t.source, t.created_at)],
);

export const auditLog = sqliteTable(
  "audit_log",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    at: text("at").notNull(),
    actor: text("actor").notNull(),
    action: text("action").notNull(),
    target: text("target"),
    outcome: text("outcome").notNull(),
    detail: text("detail"),
  },
  (t) => [index("audit_at_idx").on(t.at)],
);

/** Point-in-time snapshots of R2 buckets (storage/snapshot.ts); the manifest in R2 is the truth. */
export const storageSnapshots = sqliteTable(
  "storage_snapshots",
  {
    id: text("id").primaryKey(),
    bucket: text("bucket").notNull(),
    prefix: text("prefix").notNull(),
    parent_id: text("parent_id"),
    status: text("status", { enum: ["completed"] }).notNull(),
    manifest_key: text("manifest_key").notNull(),
    objects: integer("objects").notNull(),
    bytes: integer("bytes").notNull(),
    copied_objects: integer("copied_objects").notNull(),
    copied_bytes: integer("copied_bytes").notNull(),
    job_id: text("job_id"),
    created_at: text("created_at").notNull(),
    finished_at: text("finished_at").notNull(),
    duration_ms: integer("duration_ms").notNull(),
  },
  (t) => [index("storage_snapshots_bucket_idx").on(t.bucket, t.prefix, t.created_at)],
);

/** Which buckets are under versioning and/or replicated, switched on through the API. */
export const bucketProtection = sqliteTable("bucket_protection", {
  bucket: text("bucket").primaryKey(),
  versioning_since: text("versioning_since"),
  replica_bucket: text("replica_bucket"),
  replication_since: text("replication_since"),
  last_reconciled_at: text("last_reconciled_at"),
  /** Objects the last reconciliation found different (missed events); feeds the storage RPO. */
  last_drift: integer("last_drift"),
});

/**
 * The version store: one row per captured create or delete of a key in a
 * versioned bucket. Events arrive at least once and unordered, so a row is
 * identified by what happened (key, event time, action, etag) and ordering is
 * by event time, never by arrival.
 */
export const objectVersions = sqliteTable(
  "object_versions",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    bucket: text("bucket").notNull(),
    key: text("key").notNull(),
    event_time: text("event_time").notNull(),
    action: text("action", { enum: ["put", "delete"] }).notNull(),
    etag: text("etag").notNull(),
    size: integer("size"),
    /** Content hash = blob name in the backup bucket; null when the bytes were gone before capture. */
    sha256: text("sha256"),
    /** http and custom metadata, storage class: JSON of StoredObjectMeta (format.ts). */
    meta: text("meta"),
    source: text("source", { enum: ["event", "reconcile", "write-through"] }).notNull(),
    captured_at: text("captured_at").notNull(),
  },
  (t) => [
    uniqueIndex("object_versions_identity").on(t.bucket, t.key, t.event_time, t.action, t.etag),
    index("object_versions_key_time").on(t.bucket, t.key, t.event_time),
  ],
);

/** One line per replicated change: lag is measured, not guessed. */
export const replicationLog = sqliteTable(
  "replication_log",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    bucket: text("bucket").notNull(),
    key: text("key").notNull(),
    action: text("action").notNull(),
    event_time: text("event_time").notNull(),
    applied_at: text("applied_at").notNull(),
    lag_ms: integer("lag_ms").notNull(),
  },
  (t) => [index("replication_log_bucket_applied").on(t.bucket, t.applied_at)],
);

export type JobRow = typeof jobs.$inferSelect;
export type BackupRow = typeof backups.$inferSelect;
export type StorageSnapshotRow = typeof storageSnapshots.$inferSelect;
export type ObjectVersionRow = typeof objectVersions.$inferSelect;

// ---- Disaster recovery (workers/dr; migrations/0003_dr.sql) ----
// One row per drill or scenario run, and the stored state of every alert
// (firing -> resolved), which is what makes an alert fire once and resolve once.

export const drRuns = sqliteTable(
  "dr_runs",
  {
    /** The job's id: one run per job. */
    id: text("id").primaryKey(),
    /** "drill", or "scenario:<name>". */
    kind: text("kind").notNull(),
    trigger: text("trigger", { enum: ["manual", "scheduled"] }).notNull(),
    status: text("status", { enum: ["running", "passed", "failed"] }).notNull(),
    requested_by: text("requested_by").notNull(),
    started_at: text("started_at").notNull(),
    finished_at: text("finished_at"),
    duration_ms: integer("duration_ms"),
    /** JSON: DomainResult[] (protocol.ts), one per domain and source. */
    results: text("results"),
    /** The largest data loss the drill measured (restore point or newest canary to drill start), seconds. */
    data_loss_seconds: integer("data_loss_seconds"),
    /** JSON: string[], the failures in a line each. */
    errors: text("errors"),
  },
  (t) => [index("dr_runs_started_idx").on(t.started_at)],
);

export const drAlerts = sqliteTable("dr_alerts", {
  /** What the alert is about, e.g. "drill_failed:drill" or "rpo_breached:database:astrid". */
  key: text("key").primaryKey(),
  kind: text("kind").notNull(),
  source: text("source").notNull(),
  status: text("status", { enum: ["firing", "resolved"] }).notNull(),
  summary: text("summary").notNull(),
  fired_at: text("fired_at").notNull(),
  resolved_at: text("resolved_at"),
  updated_at: text("updated_at").notNull(),
});

export type DrRunRow = typeof drRuns.$inferSelect;
export type DrAlertRow = typeof drAlerts.$inferSelect;

// ---- Continuous archiving (workers/continuous, docs/continuous.md) ----

/**
 * A database's change stream: one replication slot from one base backup on.
 * A new slot (lost slot, schema change) is a new stream; the time between one
 * stream's last covered moment and the next one's base is a gap.
 */
export const continuousStreams = sqliteTable(
  "continuous_streams",
  {
    /** The base backup's id. */
    id: text("id").primaryKey(),
    database: text("database").notNull(),
    /** starting: base not recorded yet; active; ended (end_cause says why). */
    status: text("status", { enum: ["starting", "active", "ended"] }).notNull(),
    slot_name: text("slot_name").notNull(),
    /** The job that holds the stream: only its reports are recorded (one consumer per slot). */
    holder_job_id: text("holder_job_id"),
    consistent_lsn: text("consistent_lsn"),
    /** When the base's snapshot was taken: where the stream's recoverable window starts. */
    consistent_at: text("consistent_at"),
    /** Every commit before this is in a recorded segment (or the base): where the window ends. */
    covered_until: text("covered_until"),
    /** The LSN confirmed to the server: the end of the last recorded segment. */
    confirmed_lsn: text("confirmed_lsn"),
    last_end_lsn: text("last_end_lsn"),
    next_seq: integer("next_seq").notNull().default(0),
    /** JSON: the schema of record (tables and columns the segments replay onto). */
    schema: text("schema"),
    /** JSON: tables left out of the publication, with the statement that would include them. */
    uncovered: text("uncovered"),
    ddl_captured: integer("ddl_captured", { mode: "boolean" }).notNull().default(false),
    /** JSON: the slot's health as last reported (wal_status, safe_wal_size, retained and lag bytes). */
    slot_health: text("slot_health"),
    heartbeat_at: text("heartbeat_at"),
    created_at: text("created_at").notNull(),
    ended_at: text("ended_at"),
    end_cause: text("end_cause"),
    end_detail: text("end_detail"),
  },
  (t) => [index("continuous_streams_db_idx").on(t.database, t.created_at)],
);

/** A durable segment of a stream (its manifest is the truth; this is the index restores plan from). */
export const continuousSegments = sqliteTable(
  "continuous_segments",
  {
    stream_id: text("stream_id").notNull(),
    seq: integer("seq").notNull(),
    manifest_key: text("manifest_key").notNull(),
    start_lsn: text("start_lsn").notNull(),
    end_lsn: text("end_lsn").notNull(),
    first_commit_at: text("first_commit_at"),
    last_commit_at: text("last_commit_at"),
    transactions: integer("transactions").notNull(),
    logical_bytes: integer("logical_bytes").notNull(),
    stored_bytes: integer("stored_bytes").notNull(),
    created_at: text("created_at").notNull(),
  },
  (t) => [uniqueIndex("continuous_segments_pk").on(t.stream_id, t.seq)],
);

/** A stretch of time no stream covers, and why (a lost slot, a schema change the stream could not capture, protection off). */
export const continuousGaps = sqliteTable(
  "continuous_gaps",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    database: text("database").notNull(),
    /** The stream that ended, and the last moment it covered. */
    after_stream_id: text("after_stream_id").notNull(),
    from_time: text("from_time"),
    /** The next stream's base (null until it lands). */
    until_time: text("until_time"),
    cause: text("cause").notNull(),
    detail: text("detail"),
    detected_at: text("detected_at").notNull(),
  },
  (t) => [index("continuous_gaps_db_idx").on(t.database, t.detected_at)],
);

export type ContinuousStreamRow = typeof continuousStreams.$inferSelect;
export type ContinuousSegmentRow = typeof continuousSegments.$inferSelect;
export type ContinuousGapRow = typeof continuousGaps.$inferSelect;
