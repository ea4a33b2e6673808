// Moving R2 objects as streams: hashing, copying (single put or multipart),
// and the metadata that must travel with the bytes. Every copy is checked:
// a single put carries the expected SHA-256 (R2 refuses a mismatch), a
// multipart copy is hashed back after completion.
import { blobKey, type StoredObjectMeta } from "../shared/format.ts";
import { toHex } from "../crypto.ts";

export interface CopyLimits {
  multipart_threshold_bytes: number;
  part_size_bytes: number;
}

export interface BlobLimits extends CopyLimits {
  /** Reuse an existing blob only if it was written less than this long ago (half the GC grace period). */
  reuse_window_ms: number;
}

/** The object changed or vanished between listing it and reading it. */
export class ObjectChanged extends Error {
  constructor(key: string) {
    super(`object "${key}" changed or was deleted while being read`);
  }
}

export function metaOf(obj: R2Object): StoredObjectMeta {
  const http: Record<string, string> = {};
  const h = obj.httpMetadata ?? {};
  for (const [name, value] of Object.entries(h)) {
    if (value === undefined) continue;
    http[name] = value instanceof Date ? value.toISOString() : String(value);
  }
  return { http, custom: { ...(obj.customMetadata ?? {}) }, storage_class: obj.storageClass ?? "Standard" };
}

export function httpMetadataOf(meta: StoredObjectMeta): R2HTTPMetadata {
  const { cacheExpiry, ...rest } = meta.http;
  return { ...rest, ...(cacheExpiry ? { cacheExpiry: new Date(cacheExpiry) } : {}) };
}

const onlyIfEtag = (etag?: string) => (etag ? { onlyIf: { etagMatches: etag } } : {});

/** SHA-256 and size of an object's bytes, read as a stream; ObjectChanged if its etag is no longer `etag`. */
export async function hashObject(bucket: R2Bucket, key: string, etag?: string): Promise<{ sha256: string; size: number }> {
  const obj = await bucket.get(key, onlyIfEtag(etag));
  if (!obj || !("body" in obj)) throw new ObjectChanged(key);
  const digest = new crypto.DigestStream("SHA-256");
  await obj.body.pipeTo(digest);
  return { sha256: toHex(await digest.digest), size: obj.size };
}

export interface CopySpec {
  from: R2Bucket;
  fromKey: string;
  /** Copy only while the source still has this etag. */
  etag?: string;
  to: R2Bucket;
  toKey: string;
  size: number;
  /** The bytes' SHA-256; for a single put, the source's MD5 may check the copy instead. */
  sha256: string | { md5: ArrayBuffer };
  meta: StoredObjectMeta;
  /** Extra custom metadata for the copy only (replicas record their source's etag). */
  extraCustom?: Record<string, string>;
}

/** Copies one object, streaming; the copy's bytes are checked against spec.sha256. */
export async function copyObject(spec: CopySpec, limits: CopyLimits): Promise<void> {
  const options = {
    httpMetadata: httpMetadataOf(spec.meta),
    customMetadata: { ...spec.meta.custom, ...spec.extraCustom },
    storageClass: spec.meta.storage_class,
  };
  if (spec.size <= limits.multipart_threshold_bytes) {
    const src = await spec.from.get(spec.fromKey, onlyIfEtag(spec.etag));
    if (!src || !("body" in src)) throw new ObjectChanged(spec.fromKey);
    await spec.to.put(spec.toKey, src.body, { ...options, ...(typeof spec.sha256 === "string" ? { sha256: spec.sha256 } : spec.sha256) });
    return;
  }
  if (typeof spec.sha256 !== "string") throw new Error("a multipart copy is checked by SHA-256; none given");
  const upload = await spec.to.createMultipartUpload(spec.toKey, options);
  try {
    const parts: R2UploadedPart[] = [];
    for (let offset = 0, n = 1; offset < spec.size; offset += limits.part_size_bytes, n++) {
      const length = Math.min(limits.part_size_bytes, spec.size - offset);
      const src = await spec.from.get(spec.fromKey, { range: { offset, length }, ...onlyIfEtag(spec.etag) });
      if (!src || !("body" in src)) throw new ObjectChanged(spec.fromKey);
      parts.push(await upload.uploadPart(n, src.body));
    }
    await upload.complete(parts);
  } catch (e) {
    await upload.abort().catch(() => {});
    throw e;
  }
  const copied = await hashObject(spec.to, spec.toKey);
  if (copied.sha256 !== spec.sha256 || copied.size !== spec.size) {
    await spec.to.delete(spec.toKey);
    throw new Error(`copy of "${spec.fromKey}" came out different (sha256 ${copied.sha256}); removed`);
  }
}

/**
 * An existing blob is reused only if it was written recently enough: garbage
 * collection deletes unreferenced blobs older than its grace period, so a
 * blob referenced now must be young enough that the reference lands first.
 * An older one is simply written again.
 */
async function reusableBlob(backups: R2Bucket, sha256: string, size: number, limits: BlobLimits): Promise<boolean> {
  const existing = await backups.head(blobKey(sha256));
  return Boolean(existing && existing.size === size && Date.now() - existing.uploaded.getTime() < limits.reuse_window_ms);
}

/**
 * Makes sure the backup bucket holds the object's bytes as a content-addressed
 * blob. Returns true if it had to copy them (false: the same bytes were
 * already stored, from an earlier snapshot, another key or a captured version).
 */
async function ensureBlob(
  backups: R2Bucket, source: R2Bucket, obj: { key: string; etag: string; size: number }, sha256: string, limits: BlobLimits,
): Promise<boolean> {
  if (await reusableBlob(backups, sha256, obj.size, limits)) return false;
  await copyObject({
    from: source, fromKey: obj.key, etag: obj.etag, to: backups, toKey: blobKey(sha256), size: obj.size, sha256,
    meta: { http: {}, custom: {}, storage_class: "Standard" },
  }, limits);
  return true;
}

/** Objects up to this size are read once into memory (3 lanes x 1 MiB at most) instead of twice as streams. */
const SMALL_OBJECT_BYTES = 1024 * 1024;

/** Runs a blob write, or joins one already running for the same bytes; true if this call's write copied them. */
export type BlobWriteOnce = (sha256: string, write: () => Promise<boolean>) => Promise<boolean>;

/**
 * Stores the object's bytes as a blob (if not already there) and returns their
 * SHA-256. A small object costs one read; a larger one is read twice as a
 * stream (once to name it, once to copy it), never held whole.
 */
export async function storeBlob(
  backups: R2Bucket, source: R2Bucket, obj: { key: string; etag: string; size: number }, limits: BlobLimits,
  once: BlobWriteOnce = (_sha, write) => write(),
): Promise<{ sha256: string; copied: boolean }> {
  if (obj.size > SMALL_OBJECT_BYTES) {
    const { sha256 } = await hashObject(source, obj.key, obj.etag);
    return { sha256, copied: await once(sha256, () => ensureBlob(backups, source, obj, sha256, limits)) };
  }
  const got = await source.get(obj.key, onlyIfEtag(obj.etag));
  if (!got || !("body" in got)) throw new ObjectChanged(obj.key);
  const bytes = await got.arrayBuffer();
  const sha256 = toHex(await crypto.subtle.digest("SHA-256", bytes));
  const copied = await once(sha256, async () => {
    if (await reusableBlob(backups, sha256, obj.size, limits)) return false;
    await backups.put(blobKey(sha256), bytes, { sha256 });
    return true;
  });
  return { sha256, copied };
}
