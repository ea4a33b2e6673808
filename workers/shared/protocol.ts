// The job protocol's common part: what every message between the Worker
// (control plane) and the runner (data plane) has, whatever its kind. Each
// capability declares its own kinds' parameters, dispatches and results next
// to its code (database/protocol.ts, ml/protocol.ts, ...); both sides import
// those and validate with them, so no type is written twice.
//
// Three hops, three rules about secrets:
//   Queue message   (persisted by Cloudflare)  -> ids only, never a secret
//   Dispatch        (Worker -> runner, HTTPS)   -> carries the secrets a job needs
//   Runner reports  (runner -> Worker)          -> results, never a secret
import { z } from "zod";

export const BACKUP_TYPES = ["full", "incremental", "archive"] as const;
export const BackupType = z.enum(BACKUP_TYPES);
export type BackupType = z.infer<typeof BackupType>;

export const VerifyDepth = z.enum(["quick", "full"]);
export type VerifyDepth = z.infer<typeof VerifyDepth>;

/** A job kind's name: "<capability>.<verb>" (the registry in workers/kinds.ts lists them). */
export const JobKindName = z.string().regex(/^[a-z][a-z_]*\.[a-z][a-z_]*$/, "a job kind is <capability>.<verb>");

export const JOB_STATUSES = ["queued", "running", "succeeded", "failed"] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

/** A configured database name: also used in keys and backup ids, so kept tame. */
export const DatabaseName = z
  .string()
  .regex(/^[a-z][a-z0-9_]{0,62}$/, "database names are lower-case letters, digits and _");

/** A configured MLflow server or dataset name: used in keys and backup ids like a database name. */
export const MlName = z.string().regex(/^[a-z][a-z0-9_]{0,62}$/, "names are lower-case letters, digits and _");

/** An MLflow experiment id as the REST API spells it (digits in every store MLflow ships). */
export const ExperimentId = z.string().regex(/^[0-9A-Za-z_-]{1,64}$/, "not an MLflow experiment id");

/**
 * A training dataset (BACKUP_ML_DATASETS): database tables and/or queries of
 * a configured database, and/or R2 prefixes. No secrets: the database is
 * named, its URL stays in the Worker's secrets.
 */
export const TrainingDataset = z.strictObject({
  database: DatabaseName.optional(),
  tables: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/, "a table is name or schema.name")).default([]),
  queries: z.array(z.strictObject({
    name: z.string().regex(/^[a-z][a-z0-9_]{0,62}$/, "query names are lower-case letters, digits and _"),
    sql: z.string().min(1).max(100_000),
  })).default([]),
  r2_prefixes: z.array(z.strictObject({ bucket: z.string().regex(/^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/, "not an R2 bucket name"), prefix: z.string().max(1024) })).default([]),
}).refine((d) => d.tables.length + d.queries.length + d.r2_prefixes.length > 0, "a dataset names at least one table, query or R2 prefix")
  .refine((d) => d.database !== undefined || d.tables.length + d.queries.length === 0, "tables and queries need a database");
export type TrainingDataset = z.infer<typeof TrainingDataset>;

/** A key inside a bucket: no empty, "." or ".." path segments, no control characters. */
export const ObjectKey = z.string().min(1).max(1024).refine(
  (k) => !/[\u0000-\u001f\u007f]/.test(k) && !k.split("/").some((p) => p === "." || p === ".."),
  "keys may not contain control characters or . / .. segments",
);
/** A prefix: empty (whole bucket) or a key-like string. */
export const ObjectPrefix = z.union([z.literal(""), ObjectKey]);

/** The Queue message body: the job row holds the rest. `step` names the step of a stepped job it carries. */
export const JobMessage = z.object({ job_id: z.string().min(1), step: z.number().int().nonnegative().optional() });
export type JobMessage = z.infer<typeof JobMessage>;

// ---- Worker -> runner ----

/** Where and how the runner reaches the repository (served by the Worker). */
export const RepositoryAccess = z.object({
  url: z.url(),
  token: z.string().min(1),
});
export type RepositoryAccess = z.infer<typeof RepositoryAccess>;

/** Fields of every dispatch: which job, and its job-scoped repository access. */
export const DispatchBase = z.object({
  kind: JobKindName,
  job_id: z.string().min(1),
  repository: RepositoryAccess,
});
export type DispatchBase = z.infer<typeof DispatchBase>;

/** What every job that writes a backup into the chunk store gets. */
export const WriteAccess = z.object({
  recipients: z.array(z.string().startsWith("age1")).min(1),
  /** Keys chunk ids (HMAC), so ids reveal nothing about content. Hex, 32 bytes. */
  chunk_id_key: z.string().regex(/^[0-9a-f]{64}$/),
  /**
   * The newest earlier backup of the same source sharing this chunk store:
   * its chunks are referenced without asking the repository, which is what
   * keeps an incremental's requests proportional to what changed.
   */
  parent_manifest_key: z.string().optional(),
});

/** Fields of a dispatch that hold secrets, wherever they sit in it: what must be scrubbed from any text about the job. */
const SECRET_FIELDS = new Set(["token", "source_url", "target_url", "database_url", "chunk_id_key", "identities"]);

/** Every secret a dispatch carries (by field name, at any depth), so no kind has to list its own. */
export function dispatchSecrets(dispatch: unknown): string[] {
  const found: string[] = [];
  const walk = (value: unknown, secret: boolean) => {
    if (typeof value === "string") {
      if (secret && value.length > 0) found.push(value);
    } else if (Array.isArray(value)) {
      for (const v of value) walk(v, secret);
    } else if (value && typeof value === "object") {
      for (const [k, v] of Object.entries(value)) walk(v, secret || SECRET_FIELDS.has(k));
    }
  };
  walk(dispatch, false);
  return found;
}

// ---- Runner -> Worker ----

export const JobError = z.object({ code: z.string(), message: z.string() });
export type JobError = z.infer<typeof JobError>;

export const JobProgress = z.object({
  phase: z.string(),
  bytes: z.number().nonnegative(),
  chunks: z.number().int().nonnegative(),
});
export type JobProgress = z.infer<typeof JobProgress>;

/** What a backup into the chunk store reports: the catalog row's fields. Each kind adds its `kind`. */
export const StoredBackup = z.object({
  backup_id: z.string(),
  manifest_key: z.string(),
  logical_bytes: z.number().int().nonnegative(),
  stored_bytes: z.number().int().nonnegative(),
  new_stored_bytes: z.number().int().nonnegative(),
  chunk_count: z.number().int().nonnegative(),
  new_chunk_count: z.number().int().nonnegative(),
  sha256: z.string(),
  started_at: z.string(),
  finished_at: z.string(),
  duration_ms: z.number().nonnegative(),
});
export type StoredBackup = z.infer<typeof StoredBackup>;

/** Parameters of every verify kind (database.verify, ml.verify). */
export const VerifyParams = z.object({
  backup_id: z.string(),
  depth: VerifyDepth,
});
export type VerifyParams = z.infer<typeof VerifyParams>;

/** What a verify of a chunk-store backup found. Each verify kind adds its `kind`. */
export const VerifyFindings = z.object({
  backup_id: z.string(),
  depth: VerifyDepth,
  ok: z.boolean(),
  checked_chunks: z.number().int().nonnegative(),
  /** One line per problem, naming the chunk; empty when ok. */
  problems: z.array(z.string()),
  /** Every backup whose manifest references a damaged chunk (chunks are shared), this one included. */
  affected_backups: z.array(z.string()).optional(),
  duration_ms: z.number().nonnegative(),
});
export type VerifyFindings = z.infer<typeof VerifyFindings>;

/** A result names its kind; the kind's own schema (its registry entry) checks the rest on completion. */
export const JobResult = z.looseObject({ kind: JobKindName });
export type JobResult = z.infer<typeof JobResult>;

/** The runner's last word on a job. A failed job may still carry a result (a verify that found damage). */
export const JobCompletion = z.union([
  z.object({ status: z.literal("succeeded"), result: JobResult }),
  z.object({ status: z.literal("failed"), error: JobError, result: JobResult.optional() }),
]);
export type JobCompletion = z.infer<typeof JobCompletion>;
