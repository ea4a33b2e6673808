// The D1 catalog. It is an index for operators, not the source of truth: every
// backup row can be rebuilt from the manifests in R2 (docs/format.md).
import { sqliteTable, text, integer, index } from "drizzle-orm/sqlite-core";

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
    /** The database name; for ml the MLflow server's name, for training_data the dataset id. */
    database: text("database").notNull(),
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
  (t) => [index("backups_db_created_idx").on(t.database, t.created_at)],
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

export type JobRow = typeof jobs.$inferSelect;
export type BackupRow = typeof backups.$inferSelect;
