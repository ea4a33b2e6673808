// The ML capability's job protocol: MLflow backups, restores and verifies,
// and training-data snapshots. Imported by both sides.
import { z } from "zod";
import {
  DispatchBase, ExperimentId, MlName, StoredBackup, TrainingDataset, VerifyFindings, WriteAccess,
} from "../shared/protocol.ts";
import { DatabaseVerifyDispatch } from "../database/protocol.ts";

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
});
export type MlBackupDispatch = z.infer<typeof MlBackupDispatch>;

export const MlRestoreDispatch = DispatchBase.extend({
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
});
export type MlRestoreResult = z.infer<typeof MlRestoreResult>;

