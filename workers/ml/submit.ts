// Submitting ML jobs, shared by the admin routes and the ml_backup_schedule cron.
import { randomId } from "../crypto.ts";
import type { Catalog } from "../catalog/catalog.ts";
import type { JobRow } from "../catalog/schema.ts";
import type { BackupConfig } from "../config.ts";
import type { Env } from "../env.ts";
import { cleanupBackups, mlRetentionPolicy, type CleanupOutcome } from "../database/cleanup.ts";
import { newBackupId } from "../shared/format.ts";
import { submitJob } from "../jobs/submit.ts";

export async function submitMlBackup(
  env: Env, catalog: Catalog, req: { server: string; experiment_ids?: string[]; registry: boolean; include_deleted?: boolean; actor: string; at?: Date },
): Promise<{ job: JobRow; backup_id: string }> {
  const backup_id = newBackupId(req.server, req.at ?? new Date(), randomId(6), "ml");
  const params = {
    server: req.server, backup_id, registry: req.registry,
    ...(req.experiment_ids ? { experiment_ids: req.experiment_ids } : {}), ...(req.include_deleted ? { include_deleted: true } : {}),
  };
  const target = `${req.server}${req.experiment_ids ? ` experiments ${req.experiment_ids.join(",")}` : ""}`;
  const job = await submitJob(env, catalog, { kind: "ml.backup", params, backup_id, actor: req.actor, target });
  return { job, backup_id };
}

export async function submitTrainingDataBackup(
  env: Env, catalog: Catalog, req: { dataset: string; actor: string; at?: Date },
): Promise<{ job: JobRow; backup_id: string }> {
  const backup_id = newBackupId(req.dataset, req.at ?? new Date(), randomId(6), "td");
  const job = await submitJob(env, catalog, {
    kind: "training_data.backup", params: { dataset: req.dataset, backup_id }, backup_id, actor: req.actor, target: `dataset ${req.dataset}`,
  });
  return { job, backup_id };
}

/** ML retention: MLflow backups and training-data snapshots older than ml_artifact_retention_days. */
export async function applyMlRetention(env: Env, catalog: Catalog, config: BackupConfig, now: Date, dryRun = false, days?: number): Promise<CleanupOutcome[]> {
  const policy = mlRetentionPolicy(config, days);
  return [
    await cleanupBackups(env, catalog, { domain: "ml", policy, dryRun }, now),
    await cleanupBackups(env, catalog, { domain: "training_data", policy, dryRun }, now),
  ];
}
