// Turning R2 event notifications into versions and replica updates.
//
// R2 delivers object-create / object-delete notifications at least once and
// in no particular order, without version ids, and after the fact. So:
//  - a create is captured by reading the object *only if it still has the
//    event's etag*; if it was overwritten in between, that version's bytes are
//    gone and the version is recorded as missed (sha256 null), never guessed;
//  - every version row is identified by (key, event time, action, etag), so
//    a redelivered event adds nothing, and history is ordered by event time;
//  - the replica is only ever set to what the source holds now (etag-guarded
//    copy; a delete only if the source no longer has the key), so a stale or
//    reordered event can't roll the replica back.
// Reconciliation (reconcile.ts) catches what notifications never delivered.
import { z } from "zod";
import type { BackupConfig } from "../config.ts";
import type { Env } from "../env.ts";
import { openStorageCatalog, type StorageCatalog } from "../catalog/storage-catalog.ts";
import { copyLimits, protectionOf, storageBucket } from "./buckets.ts";
import { copyObject, hashObject, metaOf, ObjectChanged, storeBlob } from "./objects.ts";
import { blobSealing } from "./sealed.ts";
import { COPY_LANES } from "./lanes.ts";
import { forEachLimited } from "../shared/concurrency.ts";

/** The body R2 sends to a Queue for an event notification rule. */
// Actions: PutObject, CopyObject, CompleteMultipartUpload (object-create);
// DeleteObject, LifecycleDeletion (object-delete). Early messages had no
// eventTime: the time of arrival stands in for it then.
export const R2Event = z.object({
  account: z.string().optional(),
  action: z.string(),
  bucket: z.string(),
  object: z.object({ key: z.string(), size: z.number().optional(), eTag: z.string().optional() }),
  eventTime: z.iso.datetime({ offset: true }).optional(),
});
export type R2Event = z.infer<typeof R2Event>;

export type CaptureSource = "event" | "reconcile" | "write-through";

/** Custom metadata on replica objects: the source etag they copy, which is how drift is told from multipart etags. */
export const REPLICA_SOURCE_ETAG = "astrid-source-etag";

export interface CaptureContext {
  env: Env;
  config: BackupConfig;
  storage: StorageCatalog;
  now: Date;
}

export async function handleEvent(ctx: CaptureContext, event: R2Event, source: CaptureSource = "event"): Promise<void> {
  const bucket = storageBucket(ctx.env, ctx.config, event.bucket);
  if (!bucket) {
    console.warn(`event for unconfigured bucket "${event.bucket}" ignored`);
    return;
  }
  const protection = await protectionOf(ctx.config, ctx.storage, event.bucket);
  const isDelete = /Delete/.test(event.action);
  const at = event.eventTime ? new Date(event.eventTime).toISOString() : ctx.now.toISOString();
  if (protection.versioning) {
    if (isDelete) await recordDelete(ctx, event.bucket, event.object.key, at, source);
    else await captureVersion(ctx, bucket, event.bucket, event.object.key, event.object.eTag ?? "", at, source);
  }
  if (protection.replica) await replicateKey(ctx, bucket, event.bucket, protection.replica, event.object.key, at, isDelete ? "delete" : "put");
}

/** Stores the bytes of key@etag as a blob and records the version; a version already gone is recorded as missed. */
export async function captureVersion(
  ctx: CaptureContext, bucket: R2Bucket, bucketName: string, key: string, etag: string, eventTime: string, source: CaptureSource,
): Promise<void> {
  const row = {
    bucket: bucketName, key, event_time: eventTime, action: "put" as const, etag, source, captured_at: ctx.now.toISOString(),
  };
  const obj = await bucket.head(key);
  if (!obj || obj.etag !== etag) {
    await ctx.storage.insertVersion({ ...row, size: null, sha256: null, meta: null });
    return;
  }
  try {
    const { sha256, blob } = await storeBlob(ctx.env.BACKUPS, await blobSealing(ctx.env, ctx.config), bucket, obj, copyLimits(ctx.config));
    // The blob's address is recorded with the version (in its metadata JSON): restores and GC find it even after CHUNK_ID_KEY changes.
    await ctx.storage.insertVersion({ ...row, size: obj.size, sha256, meta: JSON.stringify({ ...metaOf(obj), blob }) });
  } catch (e) {
    if (!(e instanceof ObjectChanged)) throw e;
    await ctx.storage.insertVersion({ ...row, size: null, sha256: null, meta: null });
  }
}

export async function recordDelete(ctx: CaptureContext, bucketName: string, key: string, eventTime: string, source: CaptureSource) {
  await ctx.storage.insertVersion({
    bucket: bucketName, key, event_time: eventTime, action: "delete", etag: "", size: null, sha256: null, meta: null,
    source, captured_at: ctx.now.toISOString(),
  });
}

/**
 * Makes the replica's copy of key match the source as it is now. Returns true
 * if the replica had to change. Logs the lag from the event's time (not for
 * reconciliation, which has no event: what it repairs is drift, not lag).
 */
export async function replicateKey(
  ctx: CaptureContext, bucket: R2Bucket, bucketName: string, replicaName: string, key: string, eventTime: string, action: "put" | "delete",
  logLag = true,
): Promise<boolean> {
  const replica = storageBucket(ctx.env, ctx.config, replicaName);
  if (!replica) throw new Error(`replica bucket "${replicaName}" of ${bucketName} is not configured (STORAGE_BUCKETS)`);
  const [current, copy] = await Promise.all([bucket.head(key), replica.head(key)]);
  let changed = false;
  if (!current) {
    if (copy) {
      await replica.delete(key);
      changed = true;
    }
  } else if (!copy || (copy.customMetadata?.[REPLICA_SOURCE_ETAG] ?? copy.etag) !== current.etag) {
    try {
      // A single-part object carries its MD5, which checks the copy without reading the source twice.
      const md5 = current.checksums.md5;
      const check = md5 && current.size <= ctx.config.storage_multipart_threshold_bytes
        ? { md5 } : (await hashObject(bucket, key, current.etag)).sha256;
      await copyObject({
        from: bucket, fromKey: key, etag: current.etag, to: replica, toKey: key, size: current.size, sha256: check, meta: metaOf(current),
        extraCustom: { [REPLICA_SOURCE_ETAG]: current.etag },
      }, copyLimits(ctx.config));
      changed = true;
    } catch (e) {
      if (!(e instanceof ObjectChanged)) throw e; // overwritten again meanwhile: that event will bring the newest
    }
  }
  if (!logLag) return changed;
  const applied = new Date();
  await ctx.storage.logReplication({
    bucket: bucketName, key, action, event_time: eventTime, applied_at: applied.toISOString(),
    lag_ms: Math.max(0, applied.getTime() - Date.parse(eventTime)),
  });
  return changed;
}

/** The Queue that bucket event notification rules deliver to (wrangler.toml). */
export const STORAGE_EVENTS_QUEUE = "astrid-storage-events";

/** The storage events Queue consumer: one event per message, retried with backoff on failure. */
export async function consumeStorageEvents(batch: MessageBatch<unknown>, env: Env, config: BackupConfig): Promise<void> {
  const ctx: CaptureContext = { env, config, storage: openStorageCatalog(env.CATALOG), now: new Date() };
  // Events of one batch are handled side by side: capture is order-safe, so their order does not matter.
  await forEachLimited(batch.messages, COPY_LANES, async (message) => {
    const parsed = R2Event.safeParse(message.body);
    if (!parsed.success) {
      console.error(`dropping malformed storage event ${message.id}`);
      message.ack();
      return;
    }
    try {
      await handleEvent(ctx, parsed.data);
      message.ack();
    } catch (e) {
      console.error(`storage event for ${parsed.data.bucket} failed: ${(e as Error).message}`);
      message.retry({ delaySeconds: Math.min(300, 2 ** message.attempts) });
    }
  });
}
