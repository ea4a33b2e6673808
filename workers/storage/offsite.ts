// Off-site copy (the "2" of 3-2-1): the backup bucket copied to any
// S3-compatible provider outside Cloudflare. One call copies one page of the
// source listing and returns the cursor for the next, so the job machinery can
// spread a large bucket over many invocations and resume after a failure.
//
// Idempotent: every copy carries the source's etag in x-amz-meta, and an
// object already there with the same size and that etag is skipped, so a rerun
// copies nothing. Bytes stream from the R2 binding into the S3 request with a
// known Content-Length (never buffered whole); objects above a threshold go
// through S3 multipart with equal parts, each read with a ranged R2 get.
import { S3InputError, type S3Client } from "./s3/client.ts";
import { COPY_LANES } from "./lanes.ts";
import { forEachLimited } from "../shared/concurrency.ts";

/** Metadata name (x-amz-meta-…) holding the source object's R2 etag. */
export const SOURCE_ETAG_META = "astrid-source-etag";

/** S3 multipart: parts of 5 MiB to 5 GiB (the last may be smaller), at most 10,000. */
export const MIN_PART_SIZE = 5 * 1024 * 1024;
export const MAX_PARTS = 10_000;
/** Defaults: one PUT up to 100 MiB (S3 allows 5 GiB); 64 MiB parts above it. */
export const DEFAULT_MULTIPART_THRESHOLD = 100 * 1024 * 1024;
export const DEFAULT_PART_SIZE = 64 * 1024 * 1024;

export interface S3Target {
  client: S3Client;
  bucket: string;
  /** Prepended to every key at the destination, e.g. "astrid-backups/". */
  prefix?: string;
}

interface SourceObject {
  key: string;
  size: number;
  etag: string;
  httpMetadata?: { contentType?: string };
}

/** The part of R2Bucket this module uses (the Worker binding and miniflare's both fit). */
export interface R2Source {
  list(options?: { limit?: number; cursor?: string; prefix?: string; include?: ("httpMetadata" | "customMetadata")[] }): Promise<{
    objects: SourceObject[];
    truncated: boolean;
    cursor?: string;
  }>;
  get(key: string, options?: { range?: { offset: number; length: number }; onlyIf?: { etagMatches?: string } }): Promise<
    { size: number; etag: string; body?: ReadableStream<Uint8Array> } | null
  >;
}

export interface OffsiteOptions {
  prefix?: string;
  cursor?: string;
  /** Objects listed per call, 1-1000. */
  limit?: number;
  multipartThreshold?: number;
  partSize?: number;
  /** Objects copied at once; each holds two connections (R2 body into the S3 PUT) of a Worker's 6. */
  concurrency?: number;
}

export interface OffsitePage {
  listed: number;
  copied: number;
  skipped: number;
  bytes: number;
  /** Objects that changed or vanished between list and read; the next pass copies their new version. */
  changed: string[];
  /** Keys the destination cannot take (e.g. a "." segment); every pass reports them. */
  failed: { key: string; error: string }[];
  multipart: number;
  next_cursor?: string;
}

/**
 * Copies one page of `src` (listed from `cursor`) to `dest`. S3 and network
 * errors are thrown (the page can be retried as is: finished objects are
 * skipped then); a key the destination cannot take is reported in `failed`.
 */
export async function syncOffsitePage(src: R2Source, dest: S3Target, opts: OffsiteOptions = {}): Promise<OffsitePage> {
  const limit = opts.limit ?? 100;
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new S3InputError("limit must be 1-1000");
  const threshold = opts.multipartThreshold ?? DEFAULT_MULTIPART_THRESHOLD;
  const partSize = opts.partSize ?? DEFAULT_PART_SIZE;
  if (partSize < MIN_PART_SIZE) throw new S3InputError(`partSize must be at least ${MIN_PART_SIZE} bytes (S3's minimum part)`);
  const listed = await src.list({
    limit, include: ["httpMetadata"], ...(opts.prefix ? { prefix: opts.prefix } : {}), ...(opts.cursor ? { cursor: opts.cursor } : {}),
  });
  const page: OffsitePage = { listed: listed.objects.length, copied: 0, skipped: 0, bytes: 0, changed: [], failed: [], multipart: 0 };
  const copyOne = async (o: SourceObject) => {
    const key = `${dest.prefix ?? ""}${o.key}`;
    try {
      const there = await dest.client.head(dest.bucket, key);
      if (there && there.size === o.size && there.metadata[SOURCE_ETAG_META] === o.etag) {
        page.skipped++;
        return;
      }
      const outcome = o.size > threshold ? await copyMultipart(src, dest, o, key, partSize) : await copySingle(src, dest, o, key);
      if (outcome === "changed") {
        page.changed.push(o.key);
        return;
      }
      if (o.size > threshold) page.multipart++;
      page.copied++;
      page.bytes += o.size;
    } catch (e) {
      if (e instanceof S3InputError) page.failed.push({ key: o.key, error: e.message });
      else throw e;
    }
  };
  await forEachLimited(listed.objects, opts.concurrency ?? COPY_LANES, copyOne);
  if (listed.truncated && listed.cursor) page.next_cursor = listed.cursor;
  return page;
}

const metadataOf = (o: SourceObject) => ({
  metadata: { [SOURCE_ETAG_META]: o.etag },
  ...(o.httpMetadata?.contentType ? { contentType: o.httpMetadata.contentType } : {}),
});

async function copySingle(src: R2Source, dest: S3Target, o: SourceObject, key: string): Promise<"copied" | "changed"> {
  if (o.size === 0) {
    // Still read it: a vanished or rewritten source must not leave a stale empty copy.
    const head = await src.get(o.key, { onlyIf: { etagMatches: o.etag } });
    if (!head?.body) return "changed";
    await head.body.cancel();
    await dest.client.put(dest.bucket, key, "", { ...metadataOf(o) });
    return "copied";
  }
  // etagMatches: the bytes sent are the version listed, whose etag the copy records.
  const obj = await src.get(o.key, { onlyIf: { etagMatches: o.etag } });
  if (!obj?.body) return "changed";
  await dest.client.put(dest.bucket, key, obj.body, { contentLength: o.size, ...metadataOf(o) });
  return "copied";
}

/** Part size and count for an object: equal parts of at least `partSize`, grown to stay within 10,000 parts. */
export function partLayout(objectSize: number, partSize: number): { size: number; count: number } {
  const size = Math.max(partSize, Math.ceil(objectSize / MAX_PARTS));
  return { size, count: Math.ceil(objectSize / size) };
}

/** Equal parts (S3 wants them so; the last is what remains), each a ranged read of the listed version. */
async function copyMultipart(src: R2Source, dest: S3Target, o: SourceObject, key: string, partSize: number): Promise<"copied" | "changed"> {
  const { size, count } = partLayout(o.size, partSize);
  const uploadId = await dest.client.createMultipartUpload(dest.bucket, key, metadataOf(o));
  try {
    const parts: { partNumber: number; etag: string }[] = [];
    for (let i = 0; i < count; i++) {
      const offset = i * size;
      const length = Math.min(size, o.size - offset);
      const obj = await src.get(o.key, { range: { offset, length }, onlyIf: { etagMatches: o.etag } });
      if (!obj?.body) {
        await dest.client.abortMultipartUpload(dest.bucket, key, uploadId);
        return "changed";
      }
      parts.push({ partNumber: i + 1, etag: await dest.client.uploadPart(dest.bucket, key, uploadId, i + 1, obj.body, length) });
    }
    await dest.client.completeMultipartUpload(dest.bucket, key, uploadId, parts);
    return "copied";
  } catch (e) {
    // Best effort: an abandoned upload costs storage until the provider's own cleanup.
    await dest.client.abortMultipartUpload(dest.bucket, key, uploadId).catch(() => undefined);
    throw e;
  }
}


