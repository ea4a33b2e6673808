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
  "ml.backup", "ml.restore", "ml.verify", "training_data.backup",
  // Disaster recovery (workers/dr, runner/dr)
  "dr.drill", "dr.canary",
] as const;
export const JobKind = z.enum(JOB_KINDS);
export type JobKind = z.infer<typeof JobKind>;

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

export const MlBackupParams = z.object({
  server: MlName,
  backup_id: z.string(),
  /** Only these experiments; all active experiments when absent. */
  experiment_ids: z.array(ExperimentId).optional(),
  /** Back up the model registry too. */
  registry: z.boolean(),
});
export type MlBackupParams = z.infer<typeof MlBackupParams>;

export const MlRestoreParams = z.object({
  backup_id: z.string(),
  target_label: z.string(),
  /** A configured server name, or absent when the target came as a sealed URL (+ token). */
  target_server: MlName.optional(),
  target_sealed: z.string().optional(),
  /** Only these (source) experiments; everything in the backup when absent. */
  experiment_ids: z.array(ExperimentId).optional(),
  registry: z.boolean(),
});
export type MlRestoreParams = z.infer<typeof MlRestoreParams>;

export const TrainingDataParams = z.object({ dataset: MlName, backup_id: z.string() });
export type TrainingDataParams = z.infer<typeof TrainingDataParams>;

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

/** How the runner reaches an MLflow tracking server; the token is a secret (sent as a bearer token). */
export const MlflowAccess = z.object({
  tracking_uri: z.url(),
  token: z.string().optional(),
});
export type MlflowAccess = z.infer<typeof MlflowAccess>;

const writeAccess = {
  recipients: z.array(z.string().startsWith("age1")).min(1),
  chunk_id_key: z.string().regex(/^[0-9a-f]{64}$/),
  /** The newest earlier backup of the same source: its chunks are referenced without asking the repository. */
  parent_manifest_key: z.string().optional(),
};

export const MlBackupDispatch = z.object({
  ...dispatchBase,
  ...writeAccess,
  kind: z.literal("ml.backup"),
  backup_id: z.string().min(1),
  server: MlName,
  mlflow: MlflowAccess,
  experiment_ids: z.array(ExperimentId).optional(),
  registry: z.boolean(),
});
export type MlBackupDispatch = z.infer<typeof MlBackupDispatch>;

export const MlRestoreDispatch = z.object({
  ...dispatchBase,
  kind: z.literal("ml.restore"),
  backup_id: z.string().min(1),
  manifest_key: z.string().min(1),
  target_label: z.string(),
  mlflow: MlflowAccess,
  experiment_ids: z.array(ExperimentId).optional(),
  registry: z.boolean(),
  identities: z.array(z.string()).min(1),
});
export type MlRestoreDispatch = z.infer<typeof MlRestoreDispatch>;

export const MlVerifyDispatch = VerifyDispatch.extend({ kind: z.literal("ml.verify") });
export type MlVerifyDispatch = z.infer<typeof MlVerifyDispatch>;

export const TrainingDataDispatch = z.object({
  ...dispatchBase,
  ...writeAccess,
  kind: z.literal("training_data.backup"),
  backup_id: z.string().min(1),
  dataset: MlName,
  definition: TrainingDataset,
  /** The URL of definition.database, when the dataset has tables or queries. */
  database_url: z.string().optional(),
  /** The default MLflow server, to link the snapshot to the runs that used the dataset. */
  mlflow: MlflowAccess.optional(),
});
export type TrainingDataDispatch = z.infer<typeof TrainingDataDispatch>;

// ---- Disaster recovery drills (workers/dr, runner/dr) ----

/** Every drill scratch database's name starts so: the sweep finds what a killed drill left by this prefix. */
export const DR_SCRATCH_PREFIX = "astrid_dr_";

/** The scratch database of a drill's i-th database: the job id (sanitised) ties it to its drill. */
export function drScratchName(jobId: string, index: number): string {
  return `${drScratchJobPrefix(jobId)}${index}`;
}

export function drScratchJobPrefix(jobId: string): string {
  return `${DR_SCRATCH_PREFIX}${jobId.toLowerCase().replace(/[^a-z0-9]/g, "_").slice(0, 40)}_`;
}

/** A drill job's row params: which restore points it proves (chosen at submit time), never a secret. */
export const DrillParams = z.object({
  trigger: z.enum(["manual", "scheduled"]),
  restore_point: z.enum(["latest", "random"]),
  databases: z.array(z.object({ database: DatabaseName, backup_id: z.string() })),
  ml: z.array(z.object({ server: MlName, backup_id: z.string() })),
  storage: z.array(z.object({ bucket: z.string(), prefix: z.string(), snapshot_id: z.string() })),
  catalog: z.boolean(),
  /** Domains asked for that have nothing to restore: each is a failed domain of the drill. */
  missing: z.array(z.object({ domain: z.string(), source: z.string(), reason: z.string() })),
  /** A disaster scenario run (workers/dr/scenarios.ts) rather than a plain drill. */
  scenario: z.object({
    name: z.string(),
    /** table_dropped: "schema.table" to drop and restore. */
    table: z.string().optional(),
    /** storage scenarios: restore every object, not a sample. */
    whole: z.boolean().optional(),
    /** key_holder_unavailable: decrypt with the escrow identity only. */
    escrow_only: z.boolean().optional(),
  }).optional(),
});
export type DrillParams = z.infer<typeof DrillParams>;

export const DrillDispatch = z.object({
  ...dispatchBase,
  kind: z.literal("dr.drill"),
  identities: z.array(z.string()).min(1),
  /** Each database's restore point and the scratch database it goes into (a secret: it carries credentials). */
  databases: z.array(z.object({
    database: DatabaseName, backup_id: z.string(), manifest_key: z.string(), scratch_url: z.string().min(1),
  })),
  ml: z.array(z.object({ server: MlName, backup_id: z.string(), manifest_key: z.string(), mlflow: MlflowAccess })),
  /** Maintenance connections of the drill servers: leftover scratch databases (a killed drill) are dropped there. */
  sweep_urls: z.array(z.string().min(1)),
  /** Scratch databases of drills still running elsewhere: the sweep leaves them alone. */
  keep_prefixes: z.array(z.string()),
  /** table_dropped: after restoring, drop this table ("schema.table") and bring it back with pg_restore -t. */
  drop_table: z.string().optional(),
});
export type DrillDispatch = z.infer<typeof DrillDispatch>;

/** One domain and source of a drill (or scenario): restored, validated, timed. */
export const DomainResult = z.object({
  domain: z.enum(["database", "storage", "ml", "catalog"]),
  source: z.string(),
  restore_point: z.string().optional(),
  /** When the restore point was taken: the data a restore from it would lose is everything after. */
  point_created_at: z.string().optional(),
  passed: z.boolean(),
  restore_ms: z.number().nonnegative(),
  validate_ms: z.number().nonnegative(),
  bytes: z.number().int().nonnegative(),
  /** One line per problem (a damaged chunk, a table whose rows differ, a missing object...). */
  problems: z.array(z.string()),
  details: z.record(z.string(), z.unknown()).optional(),
});
export type DomainResult = z.infer<typeof DomainResult>;

export const DrillResult = z.object({
  kind: z.literal("dr.drill"),
  domains: z.array(DomainResult),
  /** Scratch databases the sweep dropped (left by a killed drill). */
  swept: z.array(z.string()),
  duration_ms: z.number().nonnegative(),
});
export type DrillResult = z.infer<typeof DrillResult>;

/** DR_CANARY: a timestamped row into each source database, so drills measure the data a recovery really loses. */
export const CanaryDispatch = z.object({
  ...dispatchBase,
  kind: z.literal("dr.canary"),
  databases: z.array(z.object({ database: DatabaseName, url: z.string().min(1) })),
});
export type CanaryDispatch = z.infer<typeof CanaryDispatch>;

export const CanaryResult = z.object({
  kind: z.literal("dr.canary"),
  written: z.array(z.object({ database: z.string(), at: z.string() })),
  problems: z.array(z.string()),
});
export type CanaryResult = z.infer<typeof CanaryResult>;

export const RunnerDispatch = z.discriminatedUnion("kind", [
  BackupDispatch, VerifyDispatch, RestoreDispatch, GcDispatch, MlBackupDispatch, MlRestoreDispatch, MlVerifyDispatch, TrainingDataDispatch,
  DrillDispatch, CanaryDispatch,
]);
export type RunnerDispatch = z.infer<typeof RunnerDispatch>;

/** Every secret a dispatch carries: what must be scrubbed from any text about the job. */
export function dispatchSecrets(job: RunnerDispatch): string[] {
  const secrets = [job.repository.token];
  if (job.kind === "database.backup") secrets.push(job.source_url, job.chunk_id_key);
  if (job.kind === "database.restore") secrets.push(job.target_url);
  if (job.kind === "database.verify" || job.kind === "database.restore" || job.kind === "ml.verify" || job.kind === "ml.restore") secrets.push(...job.identities);
  if (job.kind === "ml.backup" || job.kind === "training_data.backup") secrets.push(job.chunk_id_key);
  if (job.kind === "training_data.backup" && job.database_url) secrets.push(job.database_url);
  if ((job.kind === "ml.backup" || job.kind === "ml.restore" || job.kind === "training_data.backup") && job.mlflow?.token) secrets.push(job.mlflow.token);
  if (job.kind === "dr.drill") {
    secrets.push(...job.identities, ...job.sweep_urls, ...job.databases.map((d) => d.scratch_url));
    for (const m of job.ml) if (m.mlflow.token) secrets.push(m.mlflow.token);
  }
  if (job.kind === "dr.canary") secrets.push(...job.databases.map((d) => d.url));
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

/** An MLflow backup or training-data snapshot: the catalog row's fields, plus what was in it. */
export const MlBackupResult = BackupResult.extend({
  kind: z.enum(["ml.backup", "training_data.backup"]),
  counts: z.record(z.string(), z.number().int().nonnegative()),
});
export type MlBackupResult = z.infer<typeof MlBackupResult>;

export const MlVerifyResult = VerifyResult.extend({ kind: z.literal("ml.verify") });
export type MlVerifyResult = z.infer<typeof MlVerifyResult>;

export const MlRestoreResult = z.object({
  kind: z.literal("ml.restore"),
  backup_id: z.string(),
  target: z.string(),
  experiments: z.number().int().nonnegative(),
  runs_created: z.number().int().nonnegative(),
  /** Runs already restored by an earlier run of this restore (found by their astrid.source_run_id tag). */
  runs_existing: z.number().int().nonnegative(),
  artifacts: z.number().int().nonnegative(),
  artifact_bytes: z.number().int().nonnegative(),
  registered_models: z.number().int().nonnegative(),
  model_versions: z.number().int().nonnegative(),
  /** Source run id -> restored run id (MLflow assigns new ids on import). */
  run_id_map: z.record(z.string(), z.string()),
  /** Source experiment id -> restored experiment id. */
  experiment_id_map: z.record(z.string(), z.string()),
  duration_ms: z.number().nonnegative(),
});
export type MlRestoreResult = z.infer<typeof MlRestoreResult>;

export const JobResult = z.union([BackupResult, VerifyResult, RestoreResult, GcResult, MlBackupResult, MlVerifyResult, MlRestoreResult, DrillResult, CanaryResult]);
export type JobResult = z.infer<typeof JobResult>;

/** The runner's last word on a job. A failed job may still carry a result (a verify that found damage). */
export const JobCompletion = z.union([
  z.object({ status: z.literal("succeeded"), result: JobResult }),
  z.object({ status: z.literal("failed"), error: JobError, result: JobResult.optional() }),
]);
export type JobCompletion = z.infer<typeof JobCompletion>;
