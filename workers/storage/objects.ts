// Moving R2 objects as streams: hashing, copying (single put or multipart),
// and the metadata that must travel with the bytes. Every copy is checked:
// a single put carries the expected SHA-256 (R2 refuses a mismatch), a
// multipart copy is hashed back after completion. Blobs in the backup
// bucket are age-encrypted on the way in and decrypted on the way out
// (storage format 2, sealed.ts), as streams; format-1 blobs (plaintext) are
// still read.
import { blobKey, StoredObjectMeta } from "../shared/format.ts";
import { toHex } from "../crypto.ts";
import { decryptStream, encryptBytes, encryptStream, RECIPIENTS_META, type BlobSealing } from "./sealed.ts";

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
 * An older one is simply written again; so is one encrypted to other
 * recipients (after a key rotation the retired identity must not read what
 * new snapshots reference).
 */
async function reusableBlob(backups: R2Bucket, key: string, sealing: BlobSealing, limits: BlobLimits): Promise<boolean> {
  const existing = await backups.head(key);
  return Boolean(
    existing && existing.customMetadata?.[RECIPIENTS_META] === sealing.recipientsTag
      && Date.now() - existing.uploaded.getTime() < limits.reuse_window_ms,
  );
}

/** A pass-through that hashes what flows through it (SHA-256), to check what was encrypted is what was named. */
function hashingTap(): { tap: TransformStream<Uint8Array, Uint8Array>; sha256: () => Promise<string> } {
  const digest = new crypto.DigestStream("SHA-256");
  const writer = digest.getWriter();
  const tap = new TransformStream<Uint8Array, Uint8Array>({
    async transform(chunk, controller) {
      await writer.write(chunk);
      controller.enqueue(chunk);
    },
    async flush() {
      await writer.close();
    },
  });
  return { tap, sha256: async () => toHex(await digest.digest) };
}

/** Exactly `length` bytes from `reader` (what `carry` holds first), as a stream: one part of a multipart upload. */
function takeBytes(reader: ReadableStreamDefaultReader<Uint8Array>, carry: { rest?: Uint8Array }, length: number): ReadableStream<Uint8Array> {
  let left = length;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      while (left > 0) {
        let chunk = carry.rest;
        carry.rest = undefined;
        if (!chunk) {
          const next = await reader.read();
          if (next.done) throw new Error(`stream ended ${left} bytes early`);
          chunk = next.value;
        }
        if (chunk.length === 0) continue;
        if (chunk.length > left) {
          carry.rest = chunk.subarray(left);
          chunk = chunk.subarray(0, left);
        }
        left -= chunk.length;
        controller.enqueue(chunk);
        if (left > 0) return;
      }
      controller.close();
    },
  });
}

/**
 * Writes a stream of known length: one put up to the multipart threshold,
 * else equal parts cut from the one stream (never held whole). With a
 * SHA-256, the result is checked (by R2 for a single put, hashed back for
 * multipart, and removed if different).
 */
async function putStream(
  to: R2Bucket, key: string, body: ReadableStream<Uint8Array>, size: number, options: R2PutOptions, limits: CopyLimits, sha256?: string,
): Promise<void> {
  if (size <= limits.multipart_threshold_bytes) {
    await to.put(key, body.pipeThrough(new FixedLengthStream(size)), { ...options, ...(sha256 ? { sha256 } : {}) });
    return;
  }
  const upload = await to.createMultipartUpload(key, options);
  const reader = body.getReader();
  try {
    const parts: R2UploadedPart[] = [];
    const carry: { rest?: Uint8Array } = {};
    for (let offset = 0, n = 1; offset < size; offset += limits.part_size_bytes, n++) {
      const length = Math.min(limits.part_size_bytes, size - offset);
      parts.push(await upload.uploadPart(n, takeBytes(reader, carry, length).pipeThrough(new FixedLengthStream(length))));
    }
    await upload.complete(parts);
  } catch (e) {
    await upload.abort().catch(() => {});
    await reader.cancel().catch(() => {});
    throw e;
  }
  if (sha256) {
    const written = await hashObject(to, key);
    if (written.sha256 !== sha256 || written.size !== size) {
      await to.delete(key);
      throw new Error(`"${key}" came out different (sha256 ${written.sha256}); removed`);
    }
  }
}

/**
 * Makes sure the backup bucket holds the object's bytes as an encrypted blob
 * at their keyed address. Returns true if it had to write them (false: the
 * same bytes were already stored, from an earlier snapshot, another key or a
 * captured version). What is encrypted is hashed on the way and must be the
 * bytes named, else the blob is removed.
 */
async function ensureBlob(
  backups: R2Bucket, sealing: BlobSealing, source: R2Bucket, obj: { key: string; etag: string; size: number }, sha256: string, limits: BlobLimits,
): Promise<boolean> {
  const key = blobKey(await sealing.address(sha256));
  if (await reusableBlob(backups, key, sealing, limits)) return false;
  const src = await source.get(obj.key, onlyIfEtag(obj.etag));
  if (!src || !("body" in src)) throw new ObjectChanged(obj.key);
  const hashed = hashingTap();
  const sealed = await encryptStream(sealing.recipients, src.body.pipeThrough(hashed.tap), obj.size);
  await putStream(backups, key, sealed.stream, sealed.size, { customMetadata: { [RECIPIENTS_META]: sealing.recipientsTag } }, limits);
  if ((await hashed.sha256()) !== sha256) {
    await backups.delete(key);
    throw new ObjectChanged(obj.key);
  }
  return true;
}

/** Objects up to this size are read once into memory (3 lanes x 1 MiB at most) instead of twice as streams. */
const SMALL_OBJECT_BYTES = 1024 * 1024;

/** Runs a blob write, or joins one already running for the same bytes; true if this call's write copied them. */
export type BlobWriteOnce = (sha256: string, write: () => Promise<boolean>) => Promise<boolean>;

/**
 * Stores the object's bytes as an encrypted blob (if not already there) and
 * returns their SHA-256. A small object costs one read; a larger one is read
 * twice as a stream (once to name it, once to encrypt it), never held whole.
 */
export async function storeBlob(
  backups: R2Bucket, sealing: BlobSealing, source: R2Bucket, obj: { key: string; etag: string; size: number }, limits: BlobLimits,
  once: BlobWriteOnce = (_sha, write) => write(),
): Promise<{ sha256: string; blob: string; copied: boolean }> {
  if (obj.size > SMALL_OBJECT_BYTES) {
    const { sha256 } = await hashObject(source, obj.key, obj.etag);
    return { sha256, blob: await sealing.address(sha256), copied: await once(sha256, () => ensureBlob(backups, sealing, source, obj, sha256, limits)) };
  }
  const got = await source.get(obj.key, onlyIfEtag(obj.etag));
  if (!got || !("body" in got)) throw new ObjectChanged(obj.key);
  const bytes = new Uint8Array(await got.arrayBuffer());
  const sha256 = toHex(await crypto.subtle.digest("SHA-256", bytes));
  const copied = await once(sha256, async () => {
    const key = blobKey(await sealing.address(sha256));
    if (await reusableBlob(backups, key, sealing, limits)) return false;
    const sealed = await encryptBytes(sealing.recipients, bytes);
    await backups.put(key, sealed, { customMetadata: { [RECIPIENTS_META]: sealing.recipientsTag }, sha256: toHex(await crypto.subtle.digest("SHA-256", sealed)) });
    return true;
  });
  return { sha256, blob: await sealing.address(sha256), copied };
}

/** Where an entry's bytes are: a format-2 blob (encrypted, keyed address) or a format-1 one (plaintext, named by SHA-256). */
export interface BlobRef {
  key: string;
  sealed: boolean;
}

/**
 * Where an entry's bytes are. `blob`: the address its part (or version row) recorded, format 2; recorded, so a
 * later change of CHUNK_ID_KEY does not lose it. Otherwise `sealed` says what to look for: false, the format-1
 * plaintext blob; "either" (a version row without a recorded address), the current key's address first.
 * Undefined: missing.
 */
export async function findBlob(
  backups: R2Bucket, address: (sha256: string) => Promise<string>, entry: { sha256: string; sealed: boolean | "either"; blob?: string },
): Promise<BlobRef | undefined> {
  const { sha256, sealed } = entry;
  if (entry.blob) {
    const key = blobKey(entry.blob);
    return (await backups.head(key)) ? { key, sealed: true } : undefined;
  }
  if (sealed !== false) {
    const key = blobKey(await address(sha256));
    if (await backups.head(key)) return { key, sealed: true };
  }
  if (sealed !== true && (await backups.head(blobKey(sha256)))) return { key: blobKey(sha256), sealed: false };
  return undefined;
}

/** A version row's metadata JSON: the object's metadata and, captured since format 2, its blob's address. */
export function versionBlob(metaJson: string | null): { meta: StoredObjectMeta; sealed: "either" | true; blob?: string } {
  const raw = JSON.parse(metaJson ?? "{}") as { blob?: unknown };
  const meta = StoredObjectMeta.parse(raw);
  return typeof raw.blob === "string" && /^[0-9a-f]{64}$/.test(raw.blob) ? { meta, sealed: true, blob: raw.blob } : { meta, sealed: "either" };
}

/**
 * Writes an entry's bytes from its blob to `to`/`toKey` with its metadata,
 * decrypting a format-2 blob as a stream; the result is checked against the
 * entry's SHA-256 (a blob that decrypts to other bytes is refused).
 */
export async function restoreBlob(
  backups: R2Bucket, identities: () => string[], blob: BlobRef, to: R2Bucket, toKey: string,
  e: { size: number; sha256: string; meta: StoredObjectMeta }, limits: CopyLimits,
): Promise<void> {
  if (!blob.sealed) {
    await copyObject({ from: backups, fromKey: blob.key, to, toKey, size: e.size, sha256: e.sha256, meta: e.meta }, limits);
    return;
  }
  const got = await backups.get(blob.key);
  if (!got || !("body" in got)) throw new Error(`blob ${blob.key} vanished while being read`);
  const plaintext = await decryptStream(identities(), got.body);
  const options = { httpMetadata: httpMetadataOf(e.meta), customMetadata: { ...e.meta.custom }, storageClass: e.meta.storage_class };
  await putStream(to, toKey, plaintext, e.size, options, limits, e.sha256);
}
