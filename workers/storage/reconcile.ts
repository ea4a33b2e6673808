// storage.reconcile: compares a versioned or replicated bucket with what the
// version store and the replica say, a listing page per step, and repairs the
// difference: an object the store never captured (a lost notification) is
// captured now, a key the store still thinks alive gets a delete marker, the
// replica gets every missing or different object and loses what the source no
// longer has. What it had to repair is the drift, reported with replication status.
import { StorageReconcileParams } from "./protocol.ts";
import { openStorageCatalog } from "../catalog/storage-catalog.ts";
import type { StepContext, StepOutcome } from "../jobs/kind.ts";
import { protectionOf, requireStepBucket } from "./buckets.ts";
import { captureVersion, recordDelete, replicateKey, type CaptureContext } from "./capture.ts";
import { COPY_LANES } from "./lanes.ts";
import { forEachLimited } from "../shared/concurrency.ts";

interface ReconcileState {
  phase: "source" | "replica";
  cursor?: string;
  /** Last source key handled: the version store is compared range by range. */
  after: string;
  drift: { captured: number; deleted: number; replicated: number; replica_removed: number };
}

export async function reconcileStep(ctx: StepContext<StorageReconcileParams>): Promise<StepOutcome> {
  const p = ctx.params;
  const bucket = requireStepBucket(ctx, p.bucket);
  const storage = openStorageCatalog(ctx.env.CATALOG);
  const protection = await protectionOf(ctx.config, storage, p.bucket);
  const state = (ctx.state as ReconcileState | undefined) ?? { phase: "source", after: "", drift: { captured: 0, deleted: 0, replicated: 0, replica_removed: 0 } };
  const cap: CaptureContext = { env: ctx.env, config: ctx.config, storage, now: ctx.now };
  const now = ctx.now.toISOString();

  if (state.phase === "source") {
    const page = await bucket.list({ cursor: state.cursor, limit: ctx.config.storage_page_size, include: ["httpMetadata", "customMetadata"] });
    const through = page.truncated ? page.objects.at(-1)?.key : undefined;
    if (protection.versioning) {
      const known = await storeState(storage, p.bucket, state.after, through);
      const listed = new Set(page.objects.map((o) => o.key));
      await forEachLimited(page.objects, COPY_LANES, async (o) => {
        const v = known.get(o.key);
        if (v && v.action === "put" && v.etag === o.etag && v.sha256) return;
        await captureVersion(cap, bucket, p.bucket, o.key, o.etag, o.uploaded.toISOString(), "reconcile");
        state.drift.captured += 1;
      });
      for (const [key, v] of known) {
        if (v.action === "put" && !listed.has(key)) {
          await recordDelete(cap, p.bucket, key, now, "reconcile");
          state.drift.deleted += 1;
        }
      }
    }
    if (protection.replica) {
      const replica = protection.replica;
      await forEachLimited(page.objects, COPY_LANES, async (o) => {
        if (await replicateKey(cap, bucket, p.bucket, replica, o.key, o.uploaded.toISOString(), "put", false)) state.drift.replicated += 1;
      });
    }
    if (page.truncated) {
      state.cursor = page.cursor;
      state.after = through ?? state.after;
      return { next: state, progress: { phase: "reconciling", bytes: 0, chunks: 0 } };
    }
    if (protection.replica) return { next: { ...state, phase: "replica", cursor: undefined }, progress: { phase: "reconciling replica", bytes: 0, chunks: 0 } };
  } else if (protection.replica) {
    const replica = requireStepBucket(ctx, protection.replica);
    const page = await replica.list({ cursor: state.cursor, limit: ctx.config.storage_page_size });
    const replicaName = protection.replica;
    await forEachLimited(page.objects, COPY_LANES, async (o) => {
      if (await bucket.head(o.key)) return;
      if (await replicateKey(cap, bucket, p.bucket, replicaName, o.key, now, "delete", false)) state.drift.replica_removed += 1;
    });
    if (page.truncated) {
      state.cursor = page.cursor;
      return { next: state, progress: { phase: "reconciling replica", bytes: 0, chunks: 0 } };
    }
  }
  const drift = state.drift.captured + state.drift.deleted + state.drift.replicated + state.drift.replica_removed;
  await storage.recordReconciliation(p.bucket, new Date(), drift);
  return { done: { kind: "storage.reconcile", bucket: p.bucket, versioning: protection.versioning, replica: protection.replica ?? null, drift, ...state.drift } };
}

/** The version store's newest row per key in (after, through]. */
async function storeState(storage: ReturnType<typeof openStorageCatalog>, bucket: string, after: string, through?: string) {
  const known = new Map<string, { action: string; etag: string; sha256: string | null }>();
  for (let from = after; ;) {
    const rows = await storage.latestVersions({ bucket, after: from, ...(through !== undefined ? { through } : {}), prefix: "", limit: 500 });
    for (const r of rows) known.set(r.key, { action: r.action, etag: r.etag, sha256: r.sha256 });
    if (rows.length < 500) return known;
    from = rows.at(-1)!.key;
  }
}
