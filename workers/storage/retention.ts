// Retention for storage: snapshots older than storage_retention_days go
// (never the newest of a bucket/prefix), and versions in the version store
// that stopped being current more than storage_version_retention_days ago.
// Only manifests and rows are removed here; the blobs they alone referenced
// are reclaimed by storage garbage collection (gc.ts), after its grace period.
import type { BackupConfig } from "../config.ts";
import type { Env } from "../env.ts";
import { openStorageCatalog } from "../catalog/storage-catalog.ts";
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
  const versionCutoff = new Date(now.getTime() - version_retention_days * 86_400_000).toISOString();
  const removed_versions = opts.dryRun ? await storage.countExpiredVersions(versionCutoff) : await storage.deleteExpiredVersions(versionCutoff);
  return {
    dry_run: opts.dryRun, retention_days, version_retention_days, removed_snapshots: expired.map((s) => s.id),
    locked_snapshots: candidates.length - expired.length, removed_versions,
  };
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
