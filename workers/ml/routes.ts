// Admin routes for MLflow and training-data backups (ASTR-112's
// MLBackupService over HTTP): backup_mlflow_artifacts(experiment_id) and
// backup_model_registry() are POST /backup/ml, backup_training_data(dataset_id)
// is POST /backup/training-data, restore_ml_artifacts(backup_id) is
// POST /backup/ml/:id/restore. Verify is POST /backups/:id/verify, as for any backup.
import { checkTargetHost } from "../target-hosts.ts";
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../context.ts";
import { requireRole } from "../auth.ts";
import { mlflowAccess } from "../config.ts";
import { seal } from "../crypto.ts";
import { AppError, badRequest, conflict, notFound } from "../shared/errors.ts";
import { accepted, BackupAccepted, BackupView, backupView, kindContext, parseJson, parseQuery } from "../http.ts";
import { backupPage, restoreTarget as databaseTarget, type BackupRestorer, type Ctx } from "../database/routes.ts";
import { storageBucket, unknownBucket } from "../storage/buckets.ts";
import { submitJob } from "../jobs/submit.ts";
import { ExperimentId, MlName, ObjectPrefix } from "../shared/protocol.ts";
import { TrainingDataRestoreParams } from "./protocol.ts";
import { mlRestore, submitMlBackup, submitTrainingDataBackup, trainingDataRestore } from "./kinds.ts";

export const mlRoutes = new Hono<AppEnv>();

const ExperimentIds = z.array(ExperimentId).min(1).max(100).refine((ids) => new Set(ids).size === ids.length, "experiment ids repeat");

export const BackupRequest = z.strictObject({
  server: MlName.optional(),
  /** Only these experiments (backup_mlflow_artifacts(experiment_id)); all when absent. */
  experiment_ids: ExperimentIds.optional(),
  /** The model registry (backup_model_registry()); by default with a whole-server backup, without an experiment-scoped one. */
  registry: z.boolean().optional(),
  /** Deleted experiments and runs too; a restore recreates them deleted. */
  include_deleted: z.boolean().optional(),
});

mlRoutes.post("/backup/ml", requireRole("admin"), async (c) => {
  const body = await parseJson(c, BackupRequest);
  const config = c.get("config");
  const server = body.server ?? config.default_ml_server;
  requireServer(c, server);
  const submitted = await submitMlBackup(kindContext(c), {
    server, registry: body.registry ?? !body.experiment_ids, actor: c.get("actor"),
    ...(body.experiment_ids ? { experiment_ids: body.experiment_ids } : {}), ...(body.include_deleted ? { include_deleted: true } : {}),
  });
  const answer: z.infer<typeof BackupAccepted> = { ...accepted(submitted), backup_id: submitted.backup_id };
  return c.json(answer, 202);
});

export const ListQuery = z.strictObject({
  domain: z.enum(["ml", "training_data"]).default("ml"),
  /** The MLflow server name (domain ml) or dataset id (training_data). */
  source: MlName.optional(),
  status: z.enum(["completed", "corrupt"]).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().optional(),
});

/** An ML backup or training-data snapshot: a backup without the database-only fields. */
export const MlBackupView = BackupView.omit({ database: true, type: true });
export const MlBackupPage = z.strictObject({ backups: z.array(MlBackupView), next_cursor: z.string().optional() });
export const MlBackupDetail = MlBackupView.extend({ manifest_key: z.string(), digest: z.string() });

mlRoutes.get("/backup/ml", requireRole("viewer"), async (c) => {
  const q = parseQuery(c, ListQuery);
  const page = await backupPage(c, { domain: q.domain, limit: q.limit, cursor: q.cursor, ...(q.source ? { source: q.source } : {}), ...(q.status ? { status: q.status } : {}) });
  const answer: z.infer<typeof MlBackupPage> = { ...page, backups: page.backups.map(({ database: _, type: __, ...b }) => b) };
  return c.json(answer);
});

export const RestoreRequest = z.strictObject({
  /** A configured MLflow server name, or an http(s) tracking URI (sealed at once, never stored or echoed). */
  target: z.string().min(1).max(2048),
  /** Bearer token for a URI target; a configured server uses its own secret. */
  target_token: z.string().min(1).max(4096).optional(),
  experiment_ids: ExperimentIds.optional(),
  registry: z.boolean().optional(),
});

/** Restores an MLflow backup into a server: the body is {target, target_token?, experiment_ids?, registry?}. */
export const restoreMlBackup: BackupRestorer = async (c, backup) => {
  const body = await parseJson(c, RestoreRequest);
  const target = await restoreTarget(c, body.target, body.target_token);
  const params = {
    backup_id: backup.id, ...target, registry: body.registry ?? !body.experiment_ids,
    ...(body.experiment_ids ? { experiment_ids: body.experiment_ids } : {}),
  };
  const submitted = await submitJob(kindContext(c), mlRestore, params, { backup_id: backup.id, actor: c.get("actor"), target: `${backup.id} -> ${target.target_label}` });
  return c.json(accepted(submitted), 202);
};

// The older path: an alias of POST /backups/:id/restore for ML backups.
mlRoutes.post("/backup/ml/:id/restore", requireRole("admin"), async (c) => {
  const backup = await c.get("catalog").getBackup(c.req.param("id"));
  if (!backup || backup.domain === "database") throw notFound("ML backup");
  if (backup.domain !== "ml") throw badRequest(`backup ${backup.id} is a training-data snapshot; it is not restored into MLflow`);
  if (backup.status === "corrupt") throw conflict(`backup ${backup.id} failed verification; restore refused`);
  return restoreMlBackup(c, backup);
});

export const TrainingDataRequest = z.strictObject({ dataset_id: MlName });

mlRoutes.post("/backup/training-data", requireRole("admin"), async (c) => {
  const body = await parseJson(c, TrainingDataRequest);
  if (!(body.dataset_id in c.get("config").ml_datasets)) throw badRequest(`dataset "${body.dataset_id}" is not configured (ML_DATASETS)`);
  const submitted = await submitTrainingDataBackup(kindContext(c), { dataset: body.dataset_id, actor: c.get("actor") });
  const answer: z.infer<typeof BackupAccepted> = { ...accepted(submitted), backup_id: submitted.backup_id };
  return c.json(answer, 202);
});

export const TrainingDataRestoreRequest = z.strictObject({
  /** Tables and queries: a configured database name or a postgres:// URL (sealed at once, never stored or echoed). */
  target: z.string().min(1).max(2048).optional(),
  /** The schema to create them in; by default each table's own, and public for queries. */
  schema: TrainingDataRestoreParams.shape.schema,
  /** R2 objects: a bucket of STORAGE_BUCKETS, and a prefix put before each object's original key. */
  bucket: z.string().min(1).max(63).optional(),
  prefix: ObjectPrefix.optional(),
}).refine((b) => b.target || b.bucket, "give a target database, a bucket, or both");

/** Restores a training-data snapshot into a database and/or an R2 prefix: the body is {target?, schema?, bucket?, prefix?}. */
export const restoreTrainingDataSnapshot: BackupRestorer = async (c, backup) => {
  const body = await parseJson(c, TrainingDataRestoreRequest);
  if (body.bucket && !storageBucket(c.env, c.get("config"), body.bucket)) throw unknownBucket(body.bucket, "bucket");
  const db = body.target ? await databaseTarget(c, body.target) : undefined;
  const label = [db?.target_label, body.bucket ? `r2 ${body.bucket}/${body.prefix ?? ""}` : undefined].filter(Boolean).join(", ");
  const params = {
    backup_id: backup.id, ...db, target_label: label,
    ...(body.schema ? { schema: body.schema } : {}), ...(body.bucket ? { bucket: body.bucket, prefix: body.prefix ?? "" } : {}),
  };
  const submitted = await submitJob(kindContext(c), trainingDataRestore, params, { backup_id: backup.id, actor: c.get("actor"), target: `${backup.id} -> ${label}` });
  return c.json(accepted(submitted), 202);
};

// The older path: an alias of POST /backups/:id/restore for training-data snapshots.
mlRoutes.post("/backup/training-data/:id/restore", requireRole("admin"), async (c) => {
  const backup = await c.get("catalog").getBackup(c.req.param("id"));
  if (!backup || backup.domain !== "training_data") throw notFound("training-data snapshot");
  if (backup.status === "corrupt") throw conflict(`backup ${backup.id} failed verification; restore refused`);
  return restoreTrainingDataSnapshot(c, backup);
});

mlRoutes.get("/backup/ml/:id", requireRole("viewer"), async (c) => {
  const backup = await c.get("catalog").getBackup(c.req.param("id"));
  if (!backup || backup.domain === "database") throw notFound("ML backup");
  const { database: _, type: __, ...view } = backupView(backup);
  const answer: z.infer<typeof MlBackupDetail> = { ...view, manifest_key: backup.manifest_key, digest: backup.sha256 };
  return c.json(answer);
});

function requireServer(c: Ctx, name: string): void {
  const config = c.get("config");
  if (!(name in config.ml_servers)) throw badRequest(`MLflow server "${name}" is not configured (ML_SERVERS)`);
  if (!mlflowAccess(config, c.env, name)) throw new AppError("mlflow_not_configured", `MLflow server "${name}" has no tracking URI secret`, 422);
}

async function restoreTarget(c: Ctx, target: string, token: string | undefined) {
  if (/^https?:\/\//i.test(target)) {
    let url: URL;
    try {
      url = new URL(target);
    } catch {
      throw badRequest("target: not a valid tracking URI");
    }
    if (url.username || url.password) throw badRequest("target: put credentials in target_token, not in the URI");
    // The client appends /api/2.0/mlflow/… to it: a query or fragment would point those requests somewhere else.
    if (url.search || url.hash) throw badRequest("target: a tracking URI takes no query or fragment");
    checkTargetHost(c.get("config"), url);
    const access = { tracking_uri: url.toString().replace(/\/+$/, ""), ...(token ? { token } : {}) };
    return { target_label: `${url.host} (url)`, target_sealed: await seal(c.env.JOB_TOKEN_SECRET, JSON.stringify(access)) };
  }
  if (token) throw badRequest("target_token: only with a tracking URI target; a configured server uses its own token");
  if (!MlName.safeParse(target).success) throw badRequest("target: a configured MLflow server name or an http(s) tracking URI");
  requireServer(c, target);
  return { target_label: target, target_server: target };
}
