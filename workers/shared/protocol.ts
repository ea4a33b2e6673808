// The job protocol: every message that crosses between the Worker (control
// plane) and the runner (data plane). Both sides import this module and
// validate with these schemas; no type here is written twice elsewhere.
//
// Three hops, three rules about secrets:
//   Queue message   (persisted by Cloudflare)  -> ids only, never a secret
//   RunnerDispatch  (Worker -> runner, HTTPS)   -> carries the secrets a job needs
//   Runner reports  (runner -> Worker)          -> results, never a secret
import { z } from "zod";

export const BACKUP_TYPES = ["full", "incremental", "archive"] as const;
export const BackupType = z.enum(BACKUP_TYPES);
export type BackupType = z.infer<typeof BackupType>;

export const VerifyDepth = z.enum(["quick", "full"]);
export type VerifyDepth = z.infer<typeof VerifyDepth>;

export const JOB_KINDS = [
  "database.backup", "database.verify", "database.restore", "repository.gc",
  "storage.snapshot", "storage.restore", "storage.reconcile", "storage.gc", "storage.offsite",
] as const;
export const JobKind = z.enum(JOB_KINDS);
export type JobKind = z.infer<typeof JobKind>;

export const JOB_STATUSES = ["queued", "running", "succeeded", "failed"] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

/** A configured database name: also used in keys and backup ids, so kept tame. */
export const DatabaseName = z
  .string()
  .regex(/^[a-z][a-z0-9_]{0,62}$/, "database names are lower-case letters, digits and _");

// ---- Job parameters, as stored on the job row (no secrets) ----

export const DatabaseBackupParams = z.object({
  database: DatabaseName,
  type: BackupType,
  backup_id: z.string(),
});
export type DatabaseBackupParams = z.infer<typeof DatabaseBackupParams>;

export const DatabaseVerifyParams = z.object({
  backup_id: z.string(),
  depth: VerifyDepth,
});
export type DatabaseVerifyParams = z.infer<typeof DatabaseVerifyParams>;

export const DatabaseRestoreParams = z.object({
  backup_id: z.string(),
  /** What the operator sees: a configured name, or "<dbname> (url)". */
  target_label: z.string(),
  /** A configured database name, or absent when the target came as a sealed URL. */
  target_database: DatabaseName.optional(),
  /** The target URL sealed with the Worker's key; only the Worker can open it. */
  target_url_sealed: z.string().optional(),
  replace: z.boolean(),
});
export type DatabaseRestoreParams = z.infer<typeof DatabaseRestoreParams>;

export const RepositoryGcParams = z.object({
  /** Unreferenced objects younger than this are kept: a backup may still be about to reference them. */
  grace_minutes: z.number().int().nonnegative(),
  dry_run: z.boolean(),
});
export type RepositoryGcParams = z.infer<typeof RepositoryGcParams>;

// Storage jobs run inside the Worker, one Queue message per step (storage/steps.ts).

/** A key inside a bucket: no empty, "." or ".." path segments, no control characters. */
export const ObjectKey = z.string().min(1).max(1024).refine(
  (k) => !/[\u0000-\u001f\u007f]/.test(k) && !k.split("/").some((p) => p === "." || p === ".."),
  "keys may not contain control characters or . / .. segments",
);
/** A prefix: empty (whole bucket) or a key-like string. */
export const ObjectPrefix = z.union([z.literal(""), ObjectKey]);

export const StorageSnapshotParams = z.object({
  snapshot_id: z.string(),
  bucket: z.string(),
  prefix: z.string(),
});
export type StorageSnapshotParams = z.infer<typeof StorageSnapshotParams>;

/** Restore from a snapshot, or from the version store as of a time. */
export const StorageRestoreParams = z.object({
  source: z.discriminatedUnion("from", [
    z.object({ from: z.literal("snapshot"), snapshot_id: z.string() }),
    z.object({ from: z.literal("versions"), bucket: z.string(), as_of: z.string() }),
  ]),
  target_bucket: z.string(),
  prefix: z.string(),
  /** One object only; it must lie under prefix. */
  key: z.string().optional(),
  overwrite: z.boolean(),
  dry_run: z.boolean(),
});
export type StorageRestoreParams = z.infer<typeof StorageRestoreParams>;

export const StorageReconcileParams = z.object({ bucket: z.string() });
export type StorageReconcileParams = z.infer<typeof StorageReconcileParams>;

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

const dispatchBase = {
  job_id: z.string().min(1),
  repository: RepositoryAccess,
};

export const BackupDispatch = z.object({
  ...dispatchBase,
  kind: z.literal("database.backup"),
  backup_id: z.string().min(1),
  database: DatabaseName,
  type: BackupType,
  source_url: z.string().min(1),
  recipients: z.array(z.string().startsWith("age1")).min(1),
  /** Keys chunk ids (HMAC), so ids reveal nothing about content. Hex, 32 bytes. */
  chunk_id_key: z.string().regex(/^[0-9a-f]{64}$/),
  /**
   * The newest earlier backup of the same database sharing this chunk store:
   * its chunks are referenced without asking the repository, which is what
   * keeps an incremental's requests proportional to what changed.
   */
  parent_manifest_key: z.string().optional(),
});
export type BackupDispatch = z.infer<typeof BackupDispatch>;

export const VerifyDispatch = z.object({
  ...dispatchBase,
  kind: z.literal("database.verify"),
  backup_id: z.string().min(1),
  manifest_key: z.string().min(1),
  depth: VerifyDepth,
  /** age identities; required for depth "full" only. */
  identities: z.array(z.string()).default([]),
});
export type VerifyDispatch = z.infer<typeof VerifyDispatch>;

export const RestoreDispatch = z.object({
  ...dispatchBase,
  kind: z.literal("database.restore"),
  backup_id: z.string().min(1),
  manifest_key: z.string().min(1),
  target_url: z.string().min(1),
  replace: z.boolean(),
  identities: z.array(z.string()).min(1),
});
export type RestoreDispatch = z.infer<typeof RestoreDispatch>;

export const GcDispatch = z.object({
  ...dispatchBase,
  kind: z.literal("repository.gc"),
  ...RepositoryGcParams.shape,
});
export type GcDispatch = z.infer<typeof GcDispatch>;

export const RunnerDispatch = z.discriminatedUnion("kind", [BackupDispatch, VerifyDispatch, RestoreDispatch, GcDispatch]);
export type RunnerDispatch = z.infer<typeof RunnerDispatch>;

/** Every secret a dispatch carries: what must be scrubbed from any text about the job. */
export function dispatchSecrets(job: RunnerDispatch): string[] {
  const secrets = [job.repository.token];
  if (job.kind === "database.backup") secrets.push(job.source_url, job.chunk_id_key);
  if (job.kind === "database.restore") secrets.push(job.target_url);
  if (job.kind === "database.verify" || job.kind === "database.restore") secrets.push(...job.identities);
  return secrets.filter((s) => s.length > 0);
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

export const BackupResult = z.object({
  kind: z.literal("database.backup"),
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
export type BackupResult = z.infer<typeof BackupResult>;

export const VerifyResult = z.object({
  kind: z.literal("database.verify"),
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
export type VerifyResult = z.infer<typeof VerifyResult>;

export const RestoreResult = z.object({
  kind: z.literal("database.restore"),
  backup_id: z.string(),
  target_database: z.string(),
  bytes: z.number().int().nonnegative(),
  duration_ms: z.number().nonnegative(),
});
export type RestoreResult = z.infer<typeof RestoreResult>;

export const GcResult = z.object({
  kind: z.literal("repository.gc"),
  dry_run: z.boolean(),
  manifests: z.number().int().nonnegative(),
  scanned_objects: z.number().int().nonnegative(),
  deleted_objects: z.number().int().nonnegative(),
  reclaimed_bytes: z.number().int().nonnegative(),
  /** Unreferenced but inside the grace period. */
  kept_young: z.number().int().nonnegative(),
  duration_ms: z.number().nonnegative(),
});
export type GcResult = z.infer<typeof GcResult>;

export const JobResult = z.discriminatedUnion("kind", [BackupResult, VerifyResult, RestoreResult, GcResult]);
export type JobResult = z.infer<typeof JobResult>;

/** The runner's last word on a job. A failed job may still carry a result (a verify that found damage). */
export const JobCompletion = z.union([
  z.object({ status: z.literal("succeeded"), result: JobResult }),
  z.object({ status: z.literal("failed"), error: JobError, result: JobResult.optional() }),
]);
export type JobCompletion = z.infer<typeof JobCompletion>;
