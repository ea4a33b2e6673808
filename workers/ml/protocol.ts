// The ML capability's job protocol: MLflow backups, restores and verifies,
// and training-data snapshots. Imported by both sides.
import { z } from "zod";
import { DatabaseName, DispatchBase, ExperimentId, MlName, StoredBackup, TrainingDataset, VerifyFindings, WriteAccess } from "../shared/protocol.ts";
import { DatabaseVerifyDispatch } from "../database/protocol.ts";
import { TargetPolicy } from "../shared/target-policy.ts";

export const MlBackupParams = z.object({
  server: MlName,
  backup_id: z.string(),
  /** Only these experiments; all active experiments when absent. */
  experiment_ids: z.array(ExperimentId).optional(),
  /** Back up the model registry too. */
  registry: z.boolean(),
  /** Deleted experiments and runs too (restored deleted). */
  include_deleted: z.boolean().optional(),
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

/** Where a training-data snapshot goes back to: a database for its tables and queries, an R2 prefix for its objects. */
export const TrainingDataRestoreParams = z.object({
  backup_id: z.string(),
  target_label: z.string(),
  /** A configured database name, or absent when the target came as a sealed URL. */
  target_database: DatabaseName.optional(),
  target_url_sealed: z.string().optional(),
  /** The schema the tables and queries are created in; by default a table's own schema, and public for queries. */
  schema: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/).optional(),
  /** The R2 bucket (of STORAGE_BUCKETS) and key prefix the snapshot's objects are written under (their keys kept after it). */
  bucket: z.string().optional(),
  prefix: z.string().max(1024).optional(),
});
export type TrainingDataRestoreParams = z.infer<typeof TrainingDataRestoreParams>;

/** How the runner reaches an MLflow tracking server; the token is a secret (sent as a bearer token). */
export const MlflowAccess = z.object({
  tracking_uri: z.url(),
  token: z.string().optional(),
});
export type MlflowAccess = z.infer<typeof MlflowAccess>;

export const MlBackupDispatch = DispatchBase.extend({
  ...WriteAccess.shape,
  kind: z.literal("ml.backup"),
  backup_id: z.string().min(1),
  server: MlName,
  mlflow: MlflowAccess,
  experiment_ids: z.array(ExperimentId).optional(),
  registry: z.boolean(),
  include_deleted: z.boolean().optional(),
});
export type MlBackupDispatch = z.infer<typeof MlBackupDispatch>;

export const MlRestoreDispatch = DispatchBase.extend({
  kind: z.literal("ml.restore"),
  backup_id: z.string().min(1),
  manifest_key: z.string().min(1),
  target_label: z.string(),
  mlflow: MlflowAccess,
  /** A target given as a URL: the runner checks every address its host resolves to, and connects to the one it checked. */
  target_policy: TargetPolicy.optional(),
  experiment_ids: z.array(ExperimentId).optional(),
  registry: z.boolean(),
  identities: z.array(z.string()).min(1),
  /** Every chunk's keyed id is checked against its plaintext (a planted chunk is refused). */
  chunk_id_key: z.string().regex(/^[0-9a-f]{64}$/).optional(),
});
export type MlRestoreDispatch = z.infer<typeof MlRestoreDispatch>;

export const MlVerifyDispatch = DatabaseVerifyDispatch.extend({ kind: z.literal("ml.verify") });
export type MlVerifyDispatch = z.infer<typeof MlVerifyDispatch>;

export const TrainingDataDispatch = DispatchBase.extend({
  ...WriteAccess.shape,
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

export const TrainingDataRestoreDispatch = DispatchBase.extend({
  kind: z.literal("training_data.restore"),
  backup_id: z.string().min(1),
  manifest_key: z.string().min(1),
  target_label: z.string(),
  target_url: z.string().optional(),
  /** A target given as a URL: checked and pinned by the runner like a database restore's. */
  target_policy: TargetPolicy.optional(),
  schema: z.string().optional(),
  bucket: z.string().optional(),
  prefix: z.string().optional(),
  identities: z.array(z.string()).min(1),
  /** Every chunk's keyed id is checked against its plaintext (a planted chunk is refused). */
  chunk_id_key: z.string().regex(/^[0-9a-f]{64}$/).optional(),
});
export type TrainingDataRestoreDispatch = z.infer<typeof TrainingDataRestoreDispatch>;

/** An MLflow backup or training-data snapshot: the catalog row's fields, plus what was in it. */
export const MlBackupResult = StoredBackup.extend({
  kind: z.enum(["ml.backup", "training_data.backup"]),
  counts: z.record(z.string(), z.number().int().nonnegative()),
});
export type MlBackupResult = z.infer<typeof MlBackupResult>;

export const MlVerifyResult = VerifyFindings.extend({ kind: z.literal("ml.verify") });
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
  // MLflow 3 logged models and registry details (issue #11); defaults keep older job rows readable.
  logged_models: z.number().int().nonnegative().default(0),
  /** Logged models an earlier run of this restore had created (found by their astrid.source_model_id tag). */
  logged_models_existing: z.number().int().nonnegative().default(0),
  /** Source logged model id (m-…) -> restored one. */
  logged_model_id_map: z.record(z.string(), z.string()).default({}),
  /** Versions whose run or logged model is not in the restore (an experiment-scoped restore): each named in warnings. */
  model_versions_skipped: z.number().int().nonnegative().default(0),
  /** The source's registry times (ms), which MLflow's API cannot set: model name -> times, and per version number. */
  registry_times: z.record(z.string(), z.object({
    creation_timestamp: z.number().optional(), last_updated_timestamp: z.number().optional(),
    versions: z.record(z.string(), z.object({ creation_timestamp: z.number().optional(), last_updated_timestamp: z.number().optional() })),
  })).default({}),
  warnings: z.array(z.string()).default([]),
});
export type MlRestoreResult = z.infer<typeof MlRestoreResult>;

export const TrainingDataRestoreResult = z.object({
  kind: z.literal("training_data.restore"),
  backup_id: z.string(),
  target: z.string(),
  /** "<schema>.<table>" created per table or query part. */
  tables: z.array(z.object({ part: z.string(), table: z.string(), rows: z.number().int().nonnegative() })),
  r2_objects: z.number().int().nonnegative(),
  bytes: z.number().int().nonnegative(),
  /** The snapshot digest recomputed from what was read back from the targets: equal to the manifest's, or the job fails. */
  digest: z.string(),
  duration_ms: z.number().nonnegative(),
});
export type TrainingDataRestoreResult = z.infer<typeof TrainingDataRestoreResult>;

