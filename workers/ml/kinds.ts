// The ML capability's job kinds (MLflow backup, restore and verify;
// training-data snapshots), all run on the runner, and its scheduled task
// (every MLflow server and dataset, then ML retention).
import { targetPolicy } from "../target-hosts.ts";
import { mlflowAccess } from "../config.ts";
import { randomId, unseal } from "../crypto.ts";
import type { KindContext } from "../context.ts";
import { AppError } from "../shared/errors.ts";
import { MlManifest, mlManifestKey, newBackupId } from "../shared/format.ts";
import { readerAccess, writerAccess } from "../jobs/dispatch.ts";
import { runnerKind, type DispatchContext, type ScheduledTask } from "../jobs/kind.ts";
import { submitJob } from "../jobs/submit.ts";
import { cleanupBackups, mlRetentionPolicy, type CleanupOutcome } from "../database/cleanup.ts";
import { completeRestore, completeStoredBackup, completeVerify, type ManifestCheck } from "../database/completion.ts";
import { requireDatabaseUrl, verifyDispatch } from "../database/kinds.ts";
import { VerifyParams } from "../shared/protocol.ts";
import {
  MlBackupParams, MlBackupResult, MlflowAccess, MlRestoreParams, MlRestoreResult, MlVerifyResult, TrainingDataParams,
  TrainingDataRestoreParams, TrainingDataRestoreResult,
  type MlBackupDispatch, type MlRestoreDispatch, type MlVerifyDispatch, type TrainingDataDispatch, type TrainingDataRestoreDispatch,
} from "./protocol.ts";

export const mlVerify = runnerKind({
  kind: "ml.verify", params: VerifyParams, result: MlVerifyResult, verifies: ["ml", "training_data"],
  dispatch: (p, ctx): Promise<MlVerifyDispatch> => verifyDispatch("ml.verify", p, ctx),
  complete: completeVerify,
});

/** The manifest an ML backup or training-data snapshot must have written, agreeing with the runner's report. */
function mlManifest(backupId: string, r: MlBackupResult | undefined): ManifestCheck<MlManifest> {
  return {
    key: mlManifestKey(backupId), schema: MlManifest,
    agrees: (m) => r !== undefined && m.digest === r.sha256 && m.chunks.length === r.chunk_count && m.logical_bytes === r.logical_bytes && m.backup_id === r.backup_id,
  };
}

const succeededResult = <R>(o: { status: string; result?: R }) => (o.status === "succeeded" ? o.result : undefined);

export const mlBackup = runnerKind({
  kind: "ml.backup", params: MlBackupParams, result: MlBackupResult,
  concurrencyKey: (p) => `ml.backup:${p.server}`,
  async dispatch(p, ctx): Promise<MlBackupDispatch> {
    const parent = await ctx.catalog.latestDomainBackup("ml", p.server);
    return {
      kind: "ml.backup", job_id: ctx.job.id, backup_id: p.backup_id, server: p.server, registry: p.registry,
      ...(p.experiment_ids ? { experiment_ids: p.experiment_ids } : {}), ...(p.include_deleted ? { include_deleted: true } : {}),
      mlflow: requireMlflow(ctx, p.server), ...(await writerAccess(ctx, p.backup_id, parent?.manifest_key)),
    };
  },
  complete: (c) => completeStoredBackup(c, { source: c.params.server, type: "full", domain: "ml" }, mlManifest(c.params.backup_id, succeededResult(c.outcome)), mlVerify),
});

export const mlRestore = runnerKind({
  kind: "ml.restore", params: MlRestoreParams, result: MlRestoreResult,
  async dispatch(p, ctx): Promise<MlRestoreDispatch> {
    const mlflow = p.target_server
      ? requireMlflow(ctx, p.target_server)
      : MlflowAccess.parse(JSON.parse(await unseal(ctx.env.JOB_TOKEN_SECRET, p.target_sealed ?? "")));
    return {
      kind: "ml.restore", job_id: ctx.job.id, backup_id: p.backup_id, manifest_key: mlManifestKey(p.backup_id), target_label: p.target_label,
      mlflow, registry: p.registry, ...(p.experiment_ids ? { experiment_ids: p.experiment_ids } : {}),
      ...(await readerAccess(ctx, p.backup_id)), ...(p.target_server ? {} : { target_policy: targetPolicy(ctx.config) }),
    };
  },
  complete: completeRestore,
});

export const trainingDataBackup = runnerKind({
  kind: "training_data.backup", params: TrainingDataParams, result: MlBackupResult,
  concurrencyKey: (p) => `training_data.backup:${p.dataset}`,
  async dispatch(p, ctx): Promise<TrainingDataDispatch> {
    const definition = ctx.config.ml_datasets[p.dataset];
    if (!definition) throw new AppError("dataset_not_configured", `dataset "${p.dataset}" is not in ML_DATASETS`);
    const parent = await ctx.catalog.latestDomainBackup("training_data", p.dataset);
    const mlflow = mlflowAccess(ctx.config, ctx.env, ctx.config.default_ml_server);
    const database_url = definition.database ? requireDatabaseUrl(ctx, definition.database) : undefined;
    return {
      kind: "training_data.backup", job_id: ctx.job.id, backup_id: p.backup_id, dataset: p.dataset, definition,
      ...(database_url ? { database_url } : {}), ...(mlflow ? { mlflow } : {}),
      ...(await writerAccess(ctx, p.backup_id, parent?.manifest_key)),
    };
  },
  complete: (c) => completeStoredBackup(c, { source: c.params.dataset, type: "full", domain: "training_data" }, mlManifest(c.params.backup_id, succeededResult(c.outcome)), mlVerify),
});

export const trainingDataRestore = runnerKind({
  kind: "training_data.restore", params: TrainingDataRestoreParams, result: TrainingDataRestoreResult,
  async dispatch(p, ctx): Promise<TrainingDataRestoreDispatch> {
    const target_url = p.target_database
      ? requireDatabaseUrl(ctx, p.target_database)
      : p.target_url_sealed ? await unseal(ctx.env.JOB_TOKEN_SECRET, p.target_url_sealed) : undefined;
    return {
      kind: "training_data.restore", job_id: ctx.job.id, backup_id: p.backup_id, manifest_key: mlManifestKey(p.backup_id), target_label: p.target_label,
      ...(target_url ? { target_url } : {}), ...(p.schema ? { schema: p.schema } : {}), ...(p.bucket ? { bucket: p.bucket, prefix: p.prefix ?? "" } : {}),
      ...(await readerAccess(ctx, p.backup_id)), ...(p.target_url_sealed && !p.target_database ? { target_policy: targetPolicy(ctx.config) } : {}),
    };
  },
  complete: completeRestore,
});

export const mlKinds = [mlBackup, mlRestore, mlVerify, trainingDataBackup, trainingDataRestore];

function requireMlflow(ctx: DispatchContext, name: string) {
  const access = mlflowAccess(ctx.config, ctx.env, name);
  if (!access) throw new AppError("mlflow_not_configured", `no tracking URI configured for MLflow server "${name}"`);
  return access;
}

/** Submits a backup of a configured MLflow server; the one place an ML backup id is minted. */
export async function submitMlBackup(
  ctx: KindContext, req: { server: string; experiment_ids?: string[]; registry: boolean; include_deleted?: boolean; actor: string },
) {
  const backup_id = newBackupId(req.server, ctx.now, randomId(6), "ml");
  const params = {
    server: req.server, backup_id, registry: req.registry,
    ...(req.experiment_ids ? { experiment_ids: req.experiment_ids } : {}), ...(req.include_deleted ? { include_deleted: true } : {}),
  };
  const target = `${req.server}${req.experiment_ids ? ` experiments ${req.experiment_ids.join(",")}` : ""}`;
  return { ...(await submitJob(ctx, mlBackup, params, { backup_id, actor: req.actor, target })), backup_id };
}

/** Submits a snapshot of a configured training dataset; the one place a training-data backup id is minted. */
export async function submitTrainingDataBackup(ctx: KindContext, req: { dataset: string; actor: string }) {
  const backup_id = newBackupId(req.dataset, ctx.now, randomId(6), "td");
  const submitted = await submitJob(ctx, trainingDataBackup, { dataset: req.dataset, backup_id }, { backup_id, actor: req.actor, target: `dataset ${req.dataset}` });
  return { ...submitted, backup_id };
}

/** ML retention: MLflow backups and training-data snapshots older than ml_artifact_retention_days. */
export async function applyMlRetention(ctx: KindContext, dryRun = false, days?: number): Promise<CleanupOutcome[]> {
  const policy = mlRetentionPolicy(ctx.config, days);
  return [
    await cleanupBackups(ctx, { domain: "ml", policy, dryRun }),
    await cleanupBackups(ctx, { domain: "training_data", policy, dryRun }),
  ];
}

export const mlTasks: ScheduledTask[] = [
  {
    // Every configured MLflow server that has a tracking URI, every configured training dataset, then ML retention.
    name: "ML backups and retention", cron: (c) => c.ml_backup_schedule, enabled: (c) => c.ml_backup_enabled,
    async run(ctx, actor) {
      const ids: string[] = [];
      for (const server of Object.keys(ctx.config.ml_servers)) {
        if (!mlflowAccess(ctx.config, ctx.env, server)) continue; // a server without a URI is not in use
        ids.push((await submitMlBackup(ctx, { server, registry: ctx.config.ml_model_versioning, actor })).job.id);
      }
      for (const dataset of Object.keys(ctx.config.ml_datasets)) ids.push((await submitTrainingDataBackup(ctx, { dataset, actor })).job.id);
      const outcomes = await applyMlRetention(ctx);
      await ctx.catalog.audit({
        actor, action: "ml.cleanup", target: "ml backups and training-data snapshots", outcome: "succeeded",
        detail: { retention_days: ctx.config.ml_artifact_retention_days, removed: outcomes.flatMap((o) => o.backup_ids) },
      });
      return ids;
    },
  },
];
