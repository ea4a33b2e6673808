// Retention (ASTR-112's cleanup_old_backups, grown restic-style keep rules):
// plans with the pure planRetention (retention.ts), then deletes each removed
// backup's manifest from R2 and its catalog row. Chunks are left for garbage
// collection (docs/format.md, "Deletion").
import type { Catalog } from "../catalog/catalog.ts";
import { openContinuousCatalog } from "../catalog/continuous-catalog.ts";
import type { BackupRow } from "../catalog/schema.ts";
import type { BackupConfig } from "../config.ts";
import type { KindContext } from "../context.ts";
import { backupBucketLocks } from "../storage/lock-guard.ts";
import { planRetention, type RetentionPlan, type RetentionPolicy } from "./retention.ts";

/** The configured policy (DATABASE_RETENTION_DAYS, DATABASE_ARCHIVE_RETENTION_DAYS, DATABASE_KEEP_*), with per-request overrides. */
export function retentionPolicy(config: BackupConfig, overrides: Partial<RetentionPolicy> = {}): RetentionPolicy {
  return {
    retention_days: overrides.retention_days ?? config.database_retention_days,
    archive_retention_days: overrides.archive_retention_days ?? config.database_archive_retention_days,
    keep_last: overrides.keep_last ?? config.database_keep_last,
    keep_hourly: overrides.keep_hourly ?? config.database_keep_hourly,
    keep_daily: overrides.keep_daily ?? config.database_keep_daily,
    keep_weekly: overrides.keep_weekly ?? config.database_keep_weekly,
    keep_monthly: overrides.keep_monthly ?? config.database_keep_monthly,
  };
}

/**
 * MLflow backups and training-data snapshots: kept ml_artifact_retention_days
 * (ML_ARTIFACT_RETENTION_DAYS, 90), no keep_* rules; the newest (and newest
 * verified) backup of each server or dataset always survives (retention.ts).
 */
export function mlRetentionPolicy(config: BackupConfig, days = config.ml_artifact_retention_days): RetentionPolicy {
  return { retention_days: days, archive_retention_days: days, keep_last: 0, keep_hourly: 0, keep_daily: 0, keep_weekly: 0, keep_monthly: 0 };
}

export interface CleanupOptions {
  /** Which backups: database dumps (the default), MLflow backups or training-data snapshots. */
  domain?: BackupRow["domain"];
  policy: RetentionPolicy;
  /** Only this source's backups (a database, MLflow server or dataset); all when omitted. */
  source?: string | undefined;
  dryRun: boolean;
}

export interface CleanupOutcome {
  dry_run: boolean;
  /** How many backups were (or, in a dry run, would be) removed. */
  removed: number;
  backup_ids: string[];
  kept: RetentionPlan["keep"];
  removed_detail: RetentionPlan["remove"];
}

/** R2 deletes up to 1000 keys per call; smaller batches keep a failed run's leftovers small. */
const DELETE_BATCH = 100;

export async function cleanupBackups(ctx: KindContext, opts: CleanupOptions): Promise<CleanupOutcome> {
  const { env, catalog, now } = ctx;
  const backups = await allBackups(catalog, opts.domain ?? "database", opts.source);
  const pinned = await backupsInUse(catalog);
  // The base of a live change stream: its whole window restores from it (docs/continuous.md).
  for (const id of await openContinuousCatalog(env.CATALOG).liveStreamIds()) pinned.set(id, "live_stream_base");
  // A manifest inside a Bucket Lock window cannot be deleted: its backup stays, and the plan says why.
  const locked = await backupBucketLocks(env, ctx.config, now);
  if (locked) for (const b of backups) if (locked(b.manifest_key, new Date(b.finished_at))) pinned.set(b.id, "bucket_lock");
  const plan = planRetention(backups, opts.policy, now, pinned);
  if (!opts.dryRun) {
    const doomed = new Set(plan.remove.map((r) => r.backup_id));
    const rows = backups.filter((b) => doomed.has(b.id));
    for (let i = 0; i < rows.length; i += DELETE_BATCH) {
      const batch = rows.slice(i, i + DELETE_BATCH);
      // Manifest first: a backup exists iff its manifest does, and a row left by
      // a failure here is removed by the next run (deleting a missing key is fine).
      await env.BACKUPS.delete(batch.map((b) => b.manifest_key));
      for (const b of batch) await catalog.deleteBackup(b.id);
    }
  }
  return {
    dry_run: opts.dryRun,
    removed: plan.remove.length,
    backup_ids: plan.remove.map((r) => r.backup_id),
    kept: plan.keep,
    removed_detail: plan.remove,
  };
}

/** Backups a queued or running job reads (verify, restore): removing them would fail the job midway. */
async function backupsInUse(catalog: Catalog): Promise<Map<string, string>> {
  const pinned = new Map<string, string>();
  for (const status of ["queued", "running"] as const) {
    for (const job of await catalog.listJobs({ status, limit: 1000 })) {
      if (job.backup_id) pinned.set(job.backup_id, `in_use ${job.id}`);
    }
  }
  return pinned;
}

async function allBackups(catalog: Catalog, domain: BackupRow["domain"], source: string | undefined): Promise<BackupRow[]> {
  const rows: BackupRow[] = [];
  let cursor: { created_at: string; id: string } | undefined;
  for (;;) {
    const page = await catalog.listBackups({ limit: 500, domain, ...(source ? { source } : {}), ...(cursor ? { cursor } : {}) });
    rows.push(...page);
    const last = page[page.length - 1];
    if (page.length < 500 || !last) return rows;
    cursor = { created_at: last.created_at, id: last.id };
  }
}
