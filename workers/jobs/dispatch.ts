// Turns a claimed job row into what the runner needs, adding the secrets that
// only this hop may carry (database URLs, keys, a job-scoped repository token).
import {
  DatabaseBackupParams, DatabaseRestoreParams, DatabaseVerifyParams, MlBackupParams, MlflowAccess, MlRestoreParams, RepositoryGcParams,
  TrainingDataParams, type JobKind, type RunnerDispatch,
} from "../shared/protocol.ts";
import { manifestKey, mlManifestKey, manifestKeyFor } from "../shared/format.ts";
import { databaseUrl, mlflowAccess, type BackupConfig } from "../config.ts";
import { unseal } from "../crypto.ts";
import type { Env } from "../env.ts";
import type { JobRow } from "../catalog/schema.ts";
import type { Catalog } from "../catalog/catalog.ts";
import { mintJobToken, type JobGrant } from "../repository/job-token.ts";
import { buildCanaryDispatch, buildDrillDispatch, DrillSetupError } from "../dr/dispatch.ts";

/** A job that cannot run as asked: fail it at once, retrying will not help. */
export class JobSetupError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

const TOKEN_LIFETIME_SECONDS = 24 * 3600;

export async function buildDispatch(job: JobRow, env: Env, config: BackupConfig, catalog: Catalog, now: Date): Promise<RunnerDispatch> {
  const params: unknown = JSON.parse(job.params);
  const repository = async (scope: JobGrant["scope"], backup_id: string) => ({
    url: env.REPOSITORY_URL,
    token: await mintJobToken(env.JOB_TOKEN_SECRET, {
      job_id: job.id, scope, backup_id, expires: Math.floor(now.getTime() / 1000) + TOKEN_LIFETIME_SECONDS,
    }),
  });
  /** What every job that writes a backup gets: recipients, the chunk-id key, a write token for its backup. */
  const writer = async (backup_id: string) => ({
    recipients: config.encryption_recipients, chunk_id_key: requireSecret(env.CHUNK_ID_KEY, "CHUNK_ID_KEY"),
    repository: await repository("write", backup_id),
  });
  switch (job.kind as JobKind) {
    case "database.backup": {
      const p = DatabaseBackupParams.parse(params);
      const parent = p.type === "archive" ? undefined : await catalog.latestSharedBackup(p.database);
      return {
        ...(parent ? { parent_manifest_key: parent.manifest_key } : {}),
        kind: "database.backup", job_id: job.id, backup_id: p.backup_id, database: p.database, type: p.type,
        source_url: requireUrl(config, env, p.database), ...(await writer(p.backup_id)),
      };
    }
    case "database.verify":
    case "ml.verify": {
      const p = DatabaseVerifyParams.parse(params);
      return {
        kind: job.kind as "database.verify" | "ml.verify", job_id: job.id, backup_id: p.backup_id, manifest_key: manifestKeyFor(p.backup_id),
        depth: p.depth, identities: p.depth === "full" ? identities(env) : [], repository: await repository("read", p.backup_id),
      };
    }
    case "database.restore": {
      const p = DatabaseRestoreParams.parse(params);
      const target_url = p.target_database
        ? requireUrl(config, env, p.target_database)
        : await unseal(env.JOB_TOKEN_SECRET, p.target_url_sealed ?? "");
      return {
        kind: "database.restore", job_id: job.id, backup_id: p.backup_id, manifest_key: manifestKey(p.backup_id),
        target_url, replace: p.replace, identities: identities(env), repository: await repository("read", p.backup_id),
      };
    }
    case "repository.gc": {
      const p = RepositoryGcParams.parse(params);
      return { kind: "repository.gc", job_id: job.id, ...p, repository: await repository("gc", "-") };
    }
    case "ml.backup": {
      const p = MlBackupParams.parse(params);
      const parent = await catalog.latestDomainBackup("ml", p.server);
      return {
        ...(parent ? { parent_manifest_key: parent.manifest_key } : {}),
        kind: "ml.backup", job_id: job.id, backup_id: p.backup_id, server: p.server, registry: p.registry,
        ...(p.experiment_ids ? { experiment_ids: p.experiment_ids } : {}),
        mlflow: requireMlflow(config, env, p.server), ...(await writer(p.backup_id)),
      };
    }
    case "ml.restore": {
      const p = MlRestoreParams.parse(params);
      const mlflow = p.target_server
        ? requireMlflow(config, env, p.target_server)
        : MlflowAccess.parse(JSON.parse(await unseal(env.JOB_TOKEN_SECRET, p.target_sealed ?? "")));
      return {
        kind: "ml.restore", job_id: job.id, backup_id: p.backup_id, manifest_key: mlManifestKey(p.backup_id), target_label: p.target_label,
        mlflow, registry: p.registry, ...(p.experiment_ids ? { experiment_ids: p.experiment_ids } : {}),
        identities: identities(env), repository: await repository("read", p.backup_id),
      };
    }
    case "training_data.backup": {
      const p = TrainingDataParams.parse(params);
      const definition = config.ml_datasets[p.dataset];
      if (!definition) throw new JobSetupError("dataset_not_configured", `dataset "${p.dataset}" is not in ML_DATASETS`);
      const parent = await catalog.latestDomainBackup("training_data", p.dataset);
      const mlflow = mlflowAccess(config, env, config.default_ml_server);
      return {
        ...(parent ? { parent_manifest_key: parent.manifest_key } : {}),
        kind: "training_data.backup", job_id: job.id, backup_id: p.backup_id, dataset: p.dataset, definition,
        ...(definition.database ? { database_url: requireUrl(config, env, definition.database) } : {}),
        ...(mlflow ? { mlflow } : {}),
        ...(await writer(p.backup_id)),
      };
    }
    case "dr.drill": {
      try {
        return await buildDrillDispatch(job, env, config, catalog, { repository: await repository("read", "-"), identities: identities(env) });
      } catch (e) {
        throw e instanceof DrillSetupError ? new JobSetupError(e.code, e.message) : e;
      }
    }
    case "dr.canary":
      return buildCanaryDispatch(job, env, config, await repository("read", "-"));
    default:
      throw new JobSetupError("unknown_kind", `no runner handles jobs of kind ${job.kind}`);
  }
}

function requireUrl(config: BackupConfig, env: Env, name: string): string {
  const url = databaseUrl(config, env, name);
  if (!url) throw new JobSetupError("database_not_configured", `no connection URL configured for database "${name}"`);
  return url;
}

function requireMlflow(config: BackupConfig, env: Env, name: string) {
  const access = mlflowAccess(config, env, name);
  if (!access) throw new JobSetupError("mlflow_not_configured", `no tracking URI configured for MLflow server "${name}"`);
  return access;
}

function requireSecret(value: unknown, name: string): string {
  if (typeof value !== "string" || value === "") throw new JobSetupError("secret_missing", `the Worker secret ${name} is not set`);
  return value;
}

function identities(env: Env): string[] {
  const list = requireSecret(env.AGE_IDENTITY, "AGE_IDENTITY").split(",").map((s) => s.trim()).filter(Boolean);
  return list;
}
