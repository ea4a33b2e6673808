// The database capability's job kinds (backup, verify, restore of PostgreSQL
// databases, run on the runner) and its scheduled tasks (full, incremental
// and archive backups; retention runs with the daily full).
import { targetPolicy } from "../target-hosts.ts";
import { databaseUrl } from "../config.ts";
import { randomId, unseal } from "../crypto.ts";
import type { KindContext } from "../context.ts";
import { AppError } from "../shared/errors.ts";
import { manifestKey, manifestKeyFor, newBackupId, DatabaseManifest } from "../shared/format.ts";
import type { BackupType } from "../shared/protocol.ts";
import { ageIdentities, readerAccess, requireSecret, writerAccess } from "../jobs/dispatch.ts";
import { runnerKind, type DispatchContext, type ScheduledTask } from "../jobs/kind.ts";
import { submitJob } from "../jobs/submit.ts";
import { cleanupBackups, retentionPolicy } from "./cleanup.ts";
import { completeRestore, completeStoredBackup, completeVerify } from "./completion.ts";
import {
  DatabaseBackupParams, DatabaseBackupResult, DatabaseRestoreParams, DatabaseRestoreResult, DatabaseVerifyParams, DatabaseVerifyResult,
  type DatabaseBackupDispatch, type DatabaseRestoreDispatch, type DatabaseVerifyDispatch,
} from "./protocol.ts";

/**
 * What every verify kind of a chunk-store backup is sent (database.verify,
 * ml.verify): a read token, and for a full verify the identities and the
 * chunk-id key, so every chunk is decrypted and its keyed id checked.
 */
export async function verifyDispatch<K extends string>(kind: K, p: DatabaseVerifyParams, ctx: DispatchContext): Promise<Omit<DatabaseVerifyDispatch, "kind"> & { kind: K }> {
  return {
    kind, job_id: ctx.job.id, backup_id: p.backup_id, manifest_key: manifestKeyFor(p.backup_id),
    depth: p.depth, identities: p.depth === "full" ? ageIdentities(ctx.env) : [], repository: await ctx.repository("read", p.backup_id),
    ...(p.depth === "full" ? { chunk_id_key: requireSecret(ctx.env.CHUNK_ID_KEY, "CHUNK_ID_KEY") } : {}),
  };
}

export const databaseVerify = runnerKind({
  kind: "database.verify", params: DatabaseVerifyParams, result: DatabaseVerifyResult, verifies: ["database"],
  dispatch: (p, ctx) => verifyDispatch("database.verify", p, ctx),
  complete: completeVerify,
});

export const databaseBackup = runnerKind({
  kind: "database.backup", params: DatabaseBackupParams, result: DatabaseBackupResult,
  // One dump of a database at a time: twenty requests never mean twenty pg_dumps against production.
  concurrencyKey: (p) => `database.backup:${p.database}`,
  async dispatch(p, ctx): Promise<DatabaseBackupDispatch> {
    const parent = p.type === "archive" ? undefined : await ctx.catalog.latestSharedBackup(p.database);
    return {
      kind: "database.backup", job_id: ctx.job.id, backup_id: p.backup_id, database: p.database, type: p.type,
      source_url: requireDatabaseUrl(ctx, p.database), ...(await writerAccess(ctx, p.backup_id, parent?.manifest_key)),
    };
  },
  complete: (c) => completeStoredBackup(c, { source: c.params.database, type: c.params.type, domain: "database" }, {
    key: manifestKey(c.job.backup_id ?? ""), schema: DatabaseManifest,
    agrees: (m) => c.outcome.status === "succeeded" && m.dump.sha256 === c.outcome.result.sha256
      && m.chunks.length === c.outcome.result.chunk_count && m.dump.logical_bytes === c.outcome.result.logical_bytes,
  }, databaseVerify),
});

export const databaseRestore = runnerKind({
  kind: "database.restore", params: DatabaseRestoreParams, result: DatabaseRestoreResult,
  async dispatch(p, ctx): Promise<DatabaseRestoreDispatch> {
    const target_url = p.target_database ? requireDatabaseUrl(ctx, p.target_database) : await unseal(ctx.env.JOB_TOKEN_SECRET, p.target_url_sealed ?? "");
    return {
      kind: "database.restore", job_id: ctx.job.id, backup_id: p.backup_id, manifest_key: manifestKey(p.backup_id),
      target_url, replace: p.replace, ...(await readerAccess(ctx, p.backup_id)),
      ...(p.target_database ? {} : { target_policy: targetPolicy(ctx.config) }),
    };
  },
  complete: completeRestore,
});

export const databaseKinds = [databaseBackup, databaseVerify, databaseRestore];

/** A configured database's URL (a Worker secret); its absence fails the job at once. */
export function requireDatabaseUrl(ctx: DispatchContext, name: string): string {
  const url = databaseUrl(ctx.config, ctx.env, name);
  if (!url) throw new AppError("database_not_configured", `no connection URL configured for database "${name}"`);
  return url;
}

/** Submits a backup of a configured database; the one place a database backup id is minted. */
export async function submitDatabaseBackup(ctx: KindContext, req: { database: string; type: BackupType; actor: string }) {
  const backup_id = newBackupId(req.database, ctx.now, randomId(6));
  const submitted = await submitJob(ctx, databaseBackup, { database: req.database, type: req.type, backup_id }, {
    backup_id, actor: req.actor, target: req.database,
  });
  return { ...submitted, backup_id };
}

/** One scheduled task per backup type: every configured database gets a backup of that type. */
function backupTask(type: BackupType, cron: (c: KindContext["config"]) => string, before?: ScheduledTask["run"]): ScheduledTask {
  return {
    name: `database ${type} backups`, cron, enabled: (c) => c.database_backup_enabled,
    async run(ctx, actor) {
      if (before) await before(ctx, actor);
      const ids: string[] = [];
      for (const database of Object.keys(ctx.config.databases)) ids.push((await submitDatabaseBackup(ctx, { database, type, actor })).job.id);
      return ids;
    },
  };
}

/** Retention runs with the daily full backup: the seed's database_retention_days, plus the keep_* rules. */
async function applyRetention(ctx: KindContext, actor: string): Promise<string[]> {
  const policy = retentionPolicy(ctx.config);
  const outcome = await cleanupBackups(ctx, { policy, dryRun: false });
  await ctx.catalog.audit({ actor, action: "database.cleanup", target: "all databases", outcome: "succeeded", detail: { policy, removed: outcome.backup_ids } });
  return [];
}

export const databaseTasks: ScheduledTask[] = [
  backupTask("full", (c) => c.database_backup_schedule, applyRetention),
  backupTask("incremental", (c) => c.database_incremental_schedule),
  backupTask("archive", (c) => c.database_archive_schedule),
];
