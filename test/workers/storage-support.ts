// Helpers for the storage tests (not a test file): bucket contents, and a
// driver that delivers a stepped job's Queue messages one by one, the way the
// real Queue would, until the job settles.
import { createExecutionContext, createMessageBatch, env, getQueueResult } from "cloudflare:test";
import worker from "../../workers/index.ts";
import { pseudoRandom } from "../../runner/dev/pseudo-random.ts";
import type { JobRow } from "../../workers/catalog/schema.ts";
import type { JobMessage } from "../../workers/shared/protocol.ts";
import type { BucketLockApi, LockRule } from "../../workers/storage/bucket-lock.ts";
import { jobRow, recordingQueue, testEnv } from "./helpers.ts";
import { blobKey } from "../../workers/shared/format.ts";
import { addressKey } from "../../workers/storage/sealed.ts";
import { Decrypter } from "age-encryption";

export const data = () => env.ASTRID_DATA as R2Bucket;
export const replica = () => env.ASTRID_DATA_REPLICA as R2Bucket;
export const target = () => env.RESTORE_TARGET as R2Bucket;
export const scratch = () => env.SCRATCH as R2Bucket;

export async function emptyBucket(bucket: R2Bucket): Promise<void> {
  for (;;) {
    const listed = await bucket.list({ limit: 1000 });
    if (listed.objects.length === 0) return;
    await bucket.delete(listed.objects.map((o) => o.key));
  }
}

export async function resetStorage(): Promise<void> {
  for (const b of [data(), replica(), target(), scratch(), env.BACKUPS as R2Bucket]) await emptyBucket(b);
  await env.CATALOG.batch(["storage_snapshots", "bucket_protection", "object_versions", "replication_log"].map((t) => env.CATALOG.prepare(`DELETE FROM ${t}`)));
}

export async function sha256Hex(bytes: ArrayBuffer | Uint8Array | string): Promise<string> {
  const input = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  return [...new Uint8Array(await crypto.subtle.digest("SHA-256", input))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** key -> sha256 of every object in the bucket. */
export async function contents(bucket: R2Bucket): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  let cursor: string | undefined;
  do {
    const page = await bucket.list({ limit: 1000, cursor });
    for (const o of page.objects) out[o.key] = await sha256Hex(await (await bucket.get(o.key))!.arrayBuffer());
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  return out;
}

/** Where the backup bucket keeps the (encrypted) bytes whose SHA-256 is `sha`: their keyed address. */
export async function storedBlobKey(sha: string): Promise<string> {
  return blobKey(await (await addressKey(String(env.CHUNK_ID_KEY)))(sha));
}

/** The plaintext of the blob of `sha`, decrypted with the test identity; null if there is no such blob. */
export async function openBlob(sha: string): Promise<Uint8Array | null> {
  const blob = await (env.BACKUPS as R2Bucket).get(await storedBlobKey(sha));
  if (!blob) return null;
  const d = new Decrypter();
  d.addIdentity(String(env.AGE_IDENTITY));
  return d.decrypt(new Uint8Array(await blob.arrayBuffer()));
}

export interface Driven {
  job: JobRow;
  /** Queue messages the job's steps delivered. */
  steps: number;
  /** Deliveries the consumer asked to retry. */
  retries: number;
}

/** Delivers the job's messages until it is settled; `envOverrides` can wrap bindings to inject faults. */
export async function drive(jobId: string, envOverrides: Record<string, unknown> = {}, maxDeliveries = 500): Promise<Driven> {
  const sent: JobMessage[] = [];
  let message: JobMessage = { job_id: jobId };
  let steps = 0;
  let retries = 0;
  for (let i = 0; i < maxDeliveries; i++) {
    const batch = createMessageBatch("astrid-backup-jobs", [{ id: `m-${jobId}-${i}`, timestamp: new Date(), attempts: 1, body: message }]);
    const ctx = createExecutionContext();
    await worker.queue(batch as MessageBatch<unknown>, testEnv({ JOBS: recordingQueue(sent), ...envOverrides }));
    const result = await getQueueResult(batch, ctx);
    steps += 1;
    const job = (await jobRow(jobId))!;
    if (job.status === "succeeded" || job.status === "failed") return { job, steps, retries };
    if (result.retryMessages.length > 0) {
      retries += 1;
      continue; // the same message again, as the Queue would after the backoff
    }
    const next = sent.shift();
    if (!next) throw new Error(`job ${jobId} is ${job.status} at step ${job.step} but no message is on its way`);
    message = next;
  }
  throw new Error(`job ${jobId} did not settle in ${maxDeliveries} deliveries`);
}

/** Delivers R2-style event notifications to the storage events consumer. */
export async function deliverEvents(events: unknown[], envOverrides: Record<string, unknown> = {}) {
  const messages = events.map((body, i) => ({ id: `ev-${Date.now()}-${i}`, timestamp: new Date(), attempts: 1, body }));
  const batch = createMessageBatch("astrid-storage-events", messages);
  const ctx = createExecutionContext();
  await worker.queue(batch as MessageBatch<unknown>, testEnv(envOverrides));
  return getQueueResult(batch, ctx);
}

export function putEvent(bucket: string, obj: R2Object) {
  return { account: "test", action: "PutObject", bucket, object: { key: obj.key, size: obj.size, eTag: obj.etag }, eventTime: obj.uploaded.toISOString() };
}

export function deleteEvent(bucket: string, key: string, at: Date) {
  return { account: "test", action: "DeleteObject", bucket, object: { key }, eventTime: at.toISOString() };
}

/** The one stand-in allowed: the Cloudflare account API (Bucket Locks) cannot run here. Bound as BUCKET_LOCK_API. */
export class MemoryBucketLockApi implements BucketLockApi {
  readonly buckets = new Map<string, LockRule[]>();
  puts = 0;
  async get(bucket: string) {
    return structuredClone(this.buckets.get(bucket) ?? []);
  }
  async put(bucket: string, rules: LockRule[]) {
    this.puts++;
    this.buckets.set(bucket, structuredClone(rules));
  }
}

/** Bytes that differ per seed, so equal content is only ever equal on purpose. */
export const bytes = pseudoRandom;
