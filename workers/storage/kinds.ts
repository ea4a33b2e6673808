// The storage capability's job kinds and scheduled tasks. Storage jobs run in
// the Worker (R2-to-R2 copies need no container), one step per Queue message.
import { randomId } from "../crypto.ts";
import { openStorageCatalog } from "../catalog/storage-catalog.ts";
import type { BackupConfig } from "../config.ts";
import type { KindContext } from "../context.ts";
import { workerKind, type ScheduledTask } from "../jobs/kind.ts";
import { submitJob } from "../jobs/submit.ts";
import { newSnapshotId } from "../shared/format.ts";
import { storageGcStep, StorageGcParams } from "./gc.ts";
import { offsiteConfigured } from "./ops-settings.ts";
import { offsiteStep, OffsiteParams } from "./offsite-job.ts";
import { StorageReconcileParams, StorageRestoreParams, StorageSnapshotParams } from "./protocol.ts";
import { reconcileStep } from "./reconcile.ts";
import { restoreStep } from "./restore.ts";
import { applyStorageRetention } from "./retention.ts";
import { snapshotStep } from "./snapshot.ts";

export const storageSnapshot = workerKind({
  kind: "storage.snapshot", params: StorageSnapshotParams, step: snapshotStep,
  concurrencyKey: (p) => `storage.snapshot:${p.bucket}/${p.prefix}`,
});
export const storageRestore = workerKind({ kind: "storage.restore", params: StorageRestoreParams, step: restoreStep });
export const storageReconcile = workerKind({
  kind: "storage.reconcile", params: StorageReconcileParams, step: reconcileStep, concurrencyKey: (p) => `storage.reconcile:${p.bucket}`,
});
export const storageGc = workerKind({ kind: "storage.gc", params: StorageGcParams, step: storageGcStep, exclusive: true });
export const storageOffsite = workerKind({ kind: "storage.offsite", params: OffsiteParams, step: offsiteStep, concurrencyKey: () => "storage.offsite" });

export const storageKinds = [storageSnapshot, storageRestore, storageReconcile, storageGc, storageOffsite];

/** Snapshots of one configured source (a bucket, or a prefix of one). */
export async function submitSnapshot(ctx: KindContext, source: { bucket: string; prefix: string }, actor: string) {
  const snapshot_id = newSnapshotId(source.bucket, ctx.now, randomId(6));
  const { job } = await submitJob(ctx, storageSnapshot, { snapshot_id, ...source }, { actor, target: `${source.bucket}/${source.prefix}` });
  return { job, snapshot_id };
}

/** Buckets under versioning or replication: what reconciliation visits. */
async function protectedBuckets(ctx: KindContext): Promise<string[]> {
  const { config } = ctx;
  const rows = await openStorageCatalog(ctx.env.CATALOG).protections();
  const names = new Set([
    ...Object.keys(config.storage_replication), ...(config.storage_versioning_enabled ? config.storage_versioned_buckets : []),
    ...rows.filter((r) => r.versioning_since || r.replica_bucket).map((r) => r.bucket),
  ]);
  return [...names].filter((b) => b in config.storage_buckets).sort();
}

const storageOn = (c: BackupConfig) => c.storage_backup_enabled;

export const storageTasks: ScheduledTask[] = [
  {
    // Storage retention runs with the storage snapshots.
    name: "storage snapshots and retention", cron: (c) => c.storage_backup_schedule, enabled: storageOn,
    async run(ctx, actor) {
      const outcome = await applyStorageRetention(ctx.env, ctx.config, { dryRun: false }, ctx.now);
      await ctx.catalog.audit({ actor, action: "storage.cleanup", target: "storage snapshots and versions", outcome: "succeeded", detail: outcome });
      const ids: string[] = [];
      for (const s of ctx.config.storage_backup_sources) ids.push((await submitSnapshot(ctx, s, actor)).job.id);
      return ids;
    },
  },
  {
    name: "storage reconciliation", cron: (c) => c.storage_reconcile_schedule, enabled: () => true,
    async run(ctx, actor) {
      const ids: string[] = [];
      for (const bucket of await protectedBuckets(ctx)) ids.push((await submitJob(ctx, storageReconcile, { bucket }, { actor, target: bucket })).job.id);
      return ids;
    },
  },
  {
    // Only where an off-site destination is configured.
    name: "off-site copy", cron: (c) => c.offsite_schedule, enabled: (c) => offsiteConfigured(c),
    async run(ctx, actor) {
      return [(await submitJob(ctx, storageOffsite, { prefix: "" }, { actor, target: "off-site copy" })).job.id];
    },
  },
  {
    name: "storage garbage collection", cron: (c) => c.repository_gc_schedule, enabled: () => true,
    async run(ctx, actor) {
      const params = { grace_minutes: ctx.config.gc_grace_minutes, dry_run: false };
      return [(await submitJob(ctx, storageGc, params, { actor, target: "repository" })).job.id];
    },
  },
];
