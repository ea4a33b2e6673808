// Cron triggers: wrangler.toml lists the crons, the config says what each one
// means. Every run also sweeps jobs whose runner stopped reporting.
import { openCatalog } from "../catalog/catalog.ts";
import { loadConfig, workForCron } from "../config.ts";
import { newBackupId, newSnapshotId } from "../shared/format.ts";
import { openStorageCatalog } from "../catalog/storage-catalog.ts";
import { applyStorageRetention } from "../storage/retention.ts";
import { randomId } from "../crypto.ts";
import type { Env } from "../env.ts";
import { submitJob } from "./submit.ts";
import { cleanupBackups, retentionPolicy } from "../database/cleanup.ts";
import type { Catalog } from "../catalog/catalog.ts";
import { mlflowAccess, type BackupConfig } from "../config.ts";
import { applyMlRetention, submitMlBackup, submitTrainingDataBackup } from "../ml/submit.ts";
import { scheduleDr } from "../dr/schedule.ts";

async function applyRetention(env: Env, catalog: Catalog, config: BackupConfig, cron: string, now: Date) {
  const policy = retentionPolicy(config);
  const outcome = await cleanupBackups(env, catalog, { policy, dryRun: false }, now);
  await catalog.audit({ actor: `cron:${cron}`, action: "database.cleanup", target: "all databases", outcome: "succeeded", detail: { policy, removed: outcome.backup_ids } });
}

export async function runSchedule(cron: string, env: Env, now = new Date()): Promise<string[]> {
  const config = loadConfig(env); // throws loudly: a scheduled run with a bad config fails visibly
  const catalog = openCatalog(env.CATALOG);
  await catalog.expireStaleJobs(now, config.job_lease_seconds);
  for (const lost of await catalog.resumeLostSteps(now)) await env.JOBS.send({ job_id: lost.id, step: lost.step });
  const work = workForCron(config, cron);
  // Retention runs with the daily full backup: the seed's database_retention_days, plus the keep_* rules.
  if (config.backup_enabled && cron === config.database_backup_schedule) await applyRetention(env, catalog, config, cron, now);
  // Storage retention runs with the storage snapshots.
  if (config.backup_enabled && config.storage_backup_enabled && cron === config.storage_backup_schedule) {
    const outcome = await applyStorageRetention(env, config, { dryRun: false }, now);
    await catalog.audit({ actor: `cron:${cron}`, action: "storage.cleanup", target: "storage snapshots and versions", outcome: "succeeded", detail: outcome });
  }
  const jobIds: string[] = await scheduleDr(env, catalog, config, cron, now); // drills, lost drills, alert evaluation
  if (work.length === 0 && jobIds.length === 0) console.log(`cron "${cron}": nothing scheduled for it`);
  for (const w of work) {
    if (w.kind === "ml.backup") {
      jobIds.push(...(await scheduleMl(env, catalog, config, cron, now)));
      continue;
    }
    if (w.kind === "storage.snapshot") {
      for (const s of config.storage_backup_sources) {
        const params = { snapshot_id: newSnapshotId(s.bucket, now, randomId(6)), ...s };
        jobIds.push((await submitJob(env, catalog, { kind: w.kind, params, actor: `cron:${cron}`, target: `${s.bucket}/${s.prefix}` })).id);
      }
      continue;
    }
    if (w.kind === "storage.reconcile") {
      for (const bucket of await protectedBuckets(env, config)) {
        jobIds.push((await submitJob(env, catalog, { kind: w.kind, params: { bucket }, actor: `cron:${cron}`, target: bucket })).id);
      }
      continue;
    }
    if (w.kind === "storage.offsite") {
      // Only where an off-site destination is configured.
      if (typeof env.OFFSITE_S3_ENDPOINT === "string" && env.OFFSITE_S3_ENDPOINT) {
        jobIds.push((await submitJob(env, catalog, { kind: w.kind, params: { prefix: "" }, actor: `cron:${cron}`, target: "off-site copy" })).id);
      }
      continue;
    }
    if (w.kind === "repository.gc" || w.kind === "storage.gc") {
      const params = { grace_minutes: config.gc_grace_minutes, dry_run: false };
      jobIds.push((await submitJob(env, catalog, { kind: w.kind, params, actor: `cron:${cron}`, target: "repository" })).id);
      continue;
    }
    for (const database of Object.keys(config.databases)) {
      const backup_id = newBackupId(database, now, randomId(6));
      const job = await submitJob(env, catalog, {
        kind: w.kind, params: { database, type: w.type, backup_id }, backup_id, actor: `cron:${cron}`, target: database,
      });
      jobIds.push(job.id);
    }
  }
  return jobIds;
}

/** Buckets under versioning or replication: what reconciliation visits. */
async function protectedBuckets(env: Env, config: BackupConfig): Promise<string[]> {
  const rows = await openStorageCatalog(env.CATALOG).protections();
  const names = new Set([
    ...Object.keys(config.storage_replication), ...(config.storage_versioning_enabled ? config.storage_versioned_buckets : []),
    ...rows.filter((r) => r.versioning_since || r.replica_bucket).map((r) => r.bucket),
  ]);
  return [...names].filter((b) => b in config.storage_buckets).sort();
}

/**
 * The ml_backup_schedule cron: every configured MLflow server that has a
 * tracking URI, every configured training dataset, then ML retention
 * (ml_artifact_retention_days).
 */
async function scheduleMl(env: Env, catalog: Catalog, config: BackupConfig, cron: string, now: Date): Promise<string[]> {
  const actor = `cron:${cron}`;
  const ids: string[] = [];
  for (const server of Object.keys(config.ml_servers)) {
    if (!mlflowAccess(config, env, server)) continue; // a server without a URI is not in use
    ids.push((await submitMlBackup(env, catalog, { server, registry: config.ml_model_versioning, actor, at: now })).job.id);
  }
  for (const dataset of Object.keys(config.ml_datasets)) ids.push((await submitTrainingDataBackup(env, catalog, { dataset, actor, at: now })).job.id);
  const outcomes = await applyMlRetention(env, catalog, config, now);
  await catalog.audit({
    actor, action: "ml.cleanup", target: "ml backups and training-data snapshots", outcome: "succeeded",
    detail: { retention_days: config.ml_artifact_retention_days, removed: outcomes.flatMap((o) => o.backup_ids) },
  });
  return ids;
}
