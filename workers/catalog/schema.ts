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
