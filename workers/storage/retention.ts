// Retention for storage: snapshots older than storage_retention_days go
// (never the newest of a bucket/prefix), and versions in the version store
// that stopped being current more than storage_version_retention_days ago.
// Only manifests and rows are removed here; the blobs they alone referenced
// are reclaimed by storage garbage collection (gc.ts), after its grace period.
import type { BackupConfig } from "../config.ts";
import type { Env } from "../env.ts";
import { openStorageCatalog, type StorageCatalog } from "../catalog/storage-catalog.ts";
import { loadLifecycleRules, versionExpiryDays } from "./lifecycle.ts";
import { snapshotManifestKey, STORAGE_MANIFEST_PREFIX } from "../shared/format.ts";
import { backupBucketLocks } from "./lock-guard.ts";

export interface StorageRetentionOutcome {
  dry_run: boolean;
  retention_days: number;
  version_retention_days: number;
  removed_snapshots: string[];
  /** Expired, but kept: inside a Bucket Lock retention window. */
  locked_snapshots: number;
  removed_versions: number;
}

export async function applyStorageRetention(
  env: Env, config: BackupConfig, opts: { retentionDays?: number; versionRetentionDays?: number; dryRun: boolean }, now: Date,
): Promise<StorageRetentionOutcome> {
  const storage = openStorageCatalog(env.CATALOG);
  const retention_days = opts.retentionDays ?? config.storage_retention_days;
  const version_retention_days = opts.versionRetentionDays ?? config.storage_version_retention_days;
  const cutoff = new Date(now.getTime() - retention_days * 86_400_000).toISOString();
  const locked = await backupBucketLocks(env, config, now);
  const candidates = await storage.expiredSnapshots(cutoff);
  const expired = candidates.filter((s) => !locked?.(snapshotManifestKey(s.id), new Date(s.finished_at)));
  if (!opts.dryRun) for (const s of expired) await removeSnapshot(env, s.id);
  const removed_versions = await expireVersions(env, storage, version_retention_days, now, opts.dryRun);
  return {
    dry_run: opts.dryRun, retention_days, version_retention_days, removed_snapshots: expired.map((s) => s.id),
    locked_snapshots: candidates.length - expired.length, removed_versions,
  };
}

/**
 * Each superseded version is kept for the days its bucket's lifecycle rules
 * give its key (a rule's version_expire_days, most specific prefix first:
 * storage-ops.md), else for the default; counted from when it stopped being current.
 */
async function expireVersions(env: Env, storage: StorageCatalog, defaultDays: number, now: Date, dryRun: boolean): Promise<number> {
  const cutoff = (days: number) => new Date(now.getTime() - days * 86_400_000).toISOString();
  let removed = 0;
  for (const bucket of await storage.versionedBuckets()) {
    const rules = await loadLifecycleRules(env.BACKUPS, bucket);
    const shortest = Math.min(defaultDays, ...rules.flatMap((r) => (r.enabled && r.version_expire_days ? [r.version_expire_days] : [])));
    for (let afterId = 0; ;) {
      const rows = await storage.supersededVersions(bucket, cutoff(shortest), afterId, 500);
      const doomed = rows.filter((r) => r.superseded_at < cutoff(versionExpiryDays(rules, r.key) ?? defaultDays)).map((r) => r.id);
      removed += doomed.length;
      if (!dryRun) for (let i = 0; i < doomed.length; i += 90) await storage.deleteVersions(doomed.slice(i, i + 90));
      if (rows.length < 500) break;
      afterId = rows.at(-1)!.id;
    }
  }
  return removed;
}

/** Row first: a snapshot half-deleted is unlisted, never listed with parts missing. */
async function removeSnapshot(env: Env, id: string): Promise<void> {
  await openStorageCatalog(env.CATALOG).deleteSnapshot(id);
  await env.BACKUPS.delete(snapshotManifestKey(id));
  for (;;) {
    const parts = await env.BACKUPS.list({ prefix: `${STORAGE_MANIFEST_PREFIX}${id}/`, limit: 1000 });
    if (parts.objects.length === 0) return;
    await env.BACKUPS.delete(parts.objects.map((o) => o.key));
  }
}
