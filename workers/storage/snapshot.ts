// storage.snapshot: a point-in-time copy of a bucket (or prefix) into the
// backup bucket, one listing page per step. Each object's bytes become a
// content-addressed blob; an object whose etag and size match the parent
// snapshot's entry is referenced without being read again. Parts are written
// as the listing goes, the top manifest last, the catalog row after that: a
// snapshot that stopped half-way is never listed.
import {
  SnapshotEntry, SnapshotManifest, SnapshotPart, snapshotManifestKey, snapshotPartKey, STORAGE_FORMAT_VERSION, type SealedSnapshotPart,
} from "../shared/format.ts";
import { z } from "zod";
import { StorageSnapshotParams } from "./protocol.ts";
import { openStorageCatalog } from "../catalog/storage-catalog.ts";
import { AppError } from "../shared/errors.ts";
import type { Env } from "../env.ts";
import { macMetadata, readAuthenticated } from "../repository/manifest-mac.ts";
import type { StepContext, StepOutcome } from "../jobs/kind.ts";
import { copyLimits, requireStepBucket } from "./buckets.ts";
import { metaOf, ObjectChanged, storeBlob } from "./objects.ts";
import { blobSealing, openJson, recipientsTag, sealJson, workerIdentities, type BlobSealing } from "./sealed.ts";
import { COPY_LANES } from "./lanes.ts";
import { forEachLimited } from "../shared/concurrency.ts";

interface SnapshotState {
  created_at: string;
  cursor?: string;
  /** Parts written so far. */
  parts: number;
  parent_id?: string;
  parent_parts: number;
  /** The first parent part not yet passed by the listing. */
  parent_part: number;
  /** The parent was encrypted to other recipients (BACKUP_ENCRYPTION_KEY changed) or cannot be opened here: nothing of it is reused. */
  parent_recipients_differ?: boolean;
  stats: { objects: number; bytes: number; copied_objects: number; copied_bytes: number };
}

export async function snapshotStep(ctx: StepContext<StorageSnapshotParams>): Promise<StepOutcome> {
  const p = ctx.params;
  const source = requireStepBucket(ctx, p.bucket);
  const storage = openStorageCatalog(ctx.env.CATALOG);
  const state = (ctx.state as SnapshotState | undefined) ?? (await firstState(ctx, p));

  const page = await source.list({
    prefix: p.prefix || undefined, cursor: state.cursor, limit: ctx.config.storage_page_size, include: ["httpMetadata", "customMetadata"],
  });
  const lastKey = page.objects.at(-1)?.key;
  const parent = lastKey === undefined ? new Map<string, PartEntry>() : await parentEntries(ctx, state, lastKey);
  const entries: PartEntry[] = [];
  const blobs = new BlobWrites();
  const sealing = await blobSealing(ctx.env, ctx.config);
  await forEachLimited(page.objects, COPY_LANES, async (obj) => {
    const entry = await captureObject(ctx, sealing, source, obj, parent.get(obj.key), state, blobs);
    if (entry) entries.push(entry);
  });
  entries.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  if (entries.length > 0) {
    state.parts += 1;
    const part: SealedSnapshotPart = {
      snapshot_id: p.snapshot_id, part: state.parts,
      blobs: entries.map((e) => e.blob!),
      entries_age: await sealJson(sealing.recipients, entries.map(({ blob: _b, sealed: _s, ...e }) => e)),
    };
    await putAuthenticated(ctx.env, snapshotPartKey(p.snapshot_id, state.parts), JSON.stringify(part));
  }
  if (page.truncated) {
    state.cursor = page.cursor;
    return { next: state, progress: { phase: "copying", bytes: state.stats.bytes, chunks: state.stats.objects } };
  }
  const manifest = await finish(ctx, p, state);
  await storage.insertSnapshot({
    id: p.snapshot_id, bucket: p.bucket, prefix: p.prefix, parent_id: state.parent_id ?? null, status: "completed",
    manifest_key: snapshotManifestKey(p.snapshot_id), ...manifest.stats, job_id: ctx.job.id,
    created_at: manifest.created_at, finished_at: manifest.finished_at,
    duration_ms: Date.parse(manifest.finished_at) - Date.parse(manifest.created_at),
  });
  return { done: { kind: "storage.snapshot", snapshot_id: p.snapshot_id, parent_id: state.parent_id ?? null, parts: state.parts, ...manifest.stats } };
}

async function firstState(ctx: StepContext<StorageSnapshotParams>, p: StorageSnapshotParams): Promise<SnapshotState> {
  const parent = await openStorageCatalog(ctx.env.CATALOG).latestSnapshot(p.bucket, p.prefix);
  // A parent whose manifest is gone only costs deduplication: copy everything again.
  const parentManifest = parent ? await readManifest(ctx.env, parent.id).catch(() => undefined) : undefined;
  const tag = await recipientsTag(ctx.config.encryption_recipients);
  return {
    created_at: ctx.now.toISOString(), parts: 0,
    ...(parentManifest ? { parent_id: parentManifest.snapshot_id } : {}),
    // Other recipients (a key rotation), or a Worker without AGE_IDENTITY that cannot open the parent's parts:
    // nothing of the parent is reused by entry (blobs still deduplicate by address).
    ...(parentManifest && (parentManifest.recipients_tag !== tag || !ctx.env.AGE_IDENTITY) ? { parent_recipients_differ: true } : {}),
    parent_parts: parentManifest?.parts ?? 0, parent_part: 1,
    stats: { objects: 0, bytes: 0, copied_objects: 0, copied_bytes: 0 },
  };
}

/** The parent's entries that can match this page: parts from state.parent_part up to the one passing lastKey. */
async function parentEntries(ctx: StepContext<StorageSnapshotParams>, state: SnapshotState, lastKey: string): Promise<Map<string, PartEntry>> {
  const map = new Map<string, PartEntry>();
  if (!state.parent_id || state.parent_recipients_differ) return map;
  while (state.parent_part <= state.parent_parts) {
    const part = await readPart(ctx.env, state.parent_id, state.parent_part);
    for (const e of part.entries) map.set(e.key, e);
    const partLast = part.entries.at(-1)?.key ?? "";
    if (partLast > lastKey) break; // the next page may still need this part
    state.parent_part += 1;
  }
  return map;
}

/** Blob writes of one step by content: two keys with the same bytes in one page are copied once. */
class BlobWrites {
  private readonly pending = new Map<string, Promise<boolean>>();
  /** True only for the caller whose write copied the bytes. */
  async ensure(sha256: string, write: () => Promise<boolean>): Promise<boolean> {
    const existing = this.pending.get(sha256);
    if (existing) {
      await existing;
      return false;
    }
    const started = write();
    this.pending.set(sha256, started);
    return started;
  }
}

async function captureObject(
  ctx: StepContext<StorageSnapshotParams>, sealing: BlobSealing, source: R2Bucket, obj: R2Object, previous: PartEntry | undefined, state: SnapshotState,
  blobs: BlobWrites,
): Promise<PartEntry | undefined> {
  const base = { key: obj.key, size: obj.size, etag: obj.etag, uploaded: obj.uploaded.toISOString(), meta: metaOf(obj) };
  state.stats.objects += 1;
  state.stats.bytes += obj.size;
  // The parent's blob is reused as it is only if it is in this format (readPart says so); a format-1 parent's
  // plaintext blob is encrypted now (storeBlob), so a snapshot never references plaintext.
  if (previous?.blob && previous.etag === obj.etag && previous.size === obj.size) return { ...base, sha256: previous.sha256, blob: previous.blob, sealed: true };
  try {
    const { sha256, blob, copied } = await storeBlob(ctx.env.BACKUPS, sealing, source, obj, copyLimits(ctx.config), (sha, write) => blobs.ensure(sha, write));
    if (copied) {
      state.stats.copied_objects += 1;
      state.stats.copied_bytes += obj.size;
    }
    return { ...base, sha256, blob, sealed: true };
  } catch (e) {
    if (!(e instanceof ObjectChanged)) throw e;
    // Overwritten or deleted since the listing: the snapshot keeps the listing's moment, minus this object;
    // the next snapshot (or the version store) has its new state.
    state.stats.objects -= 1;
    state.stats.bytes -= obj.size;
    return undefined;
  }
}

async function finish(ctx: StepContext<StorageSnapshotParams>, p: StorageSnapshotParams, state: SnapshotState): Promise<SnapshotManifest> {
  const manifest: SnapshotManifest = {
    format: "astrid-backup/storage-snapshot", format_version: STORAGE_FORMAT_VERSION, snapshot_id: p.snapshot_id,
    bucket: p.bucket, prefix: p.prefix, created_at: state.created_at, finished_at: new Date().toISOString(),
    ...(state.parent_id ? { parent_id: state.parent_id } : {}), parts: state.parts, stats: state.stats,
    recipients_tag: await recipientsTag(ctx.config.encryption_recipients),
  };
  await putAuthenticated(ctx.env, snapshotManifestKey(p.snapshot_id), JSON.stringify(manifest, null, 1));
  return manifest;
}

/**
 * Snapshot manifests and parts carry the same MAC as database and ML
 * manifests (repository/manifest-mac.ts): they say which blobs a restore
 * writes into protected buckets, so one planted by whoever can write to R2
 * must not be restored. Only the Worker writes them, and it signs what it writes.
 */
async function putAuthenticated(env: Env, key: string, text: string): Promise<void> {
  const bytes = new TextEncoder().encode(text);
  await env.BACKUPS.put(key, bytes, { httpMetadata: { contentType: "application/json" }, customMetadata: await macMetadata(env, bytes) });
}

async function readAuthenticatedJson(env: Env, key: string, missing: string): Promise<unknown> {
  const read = await readAuthenticated(env, key);
  if (!read) throw new AppError("manifest_missing", missing);
  if (read.auth === "forged") throw new AppError("manifest_not_authentic", `${key} does not carry a valid MAC: refusing to restore from it`);
  return JSON.parse(new TextDecoder().decode(read.bytes));
}

export async function readManifest(env: Env, snapshotId: string): Promise<SnapshotManifest> {
  return SnapshotManifest.parse(await readAuthenticatedJson(env, snapshotManifestKey(snapshotId), `snapshot ${snapshotId} has no manifest in the backup bucket`));
}

/** A part's entries, each with where its bytes are: `sealed` (format 2) or a plaintext blob named by its SHA-256 (format 1). */
type PartEntry = OpenedPart["entries"][number];

export interface OpenedPart {
  snapshot_id: string;
  part: number;
  /** `blob`: a format-2 entry's recorded blob address (its part's `blobs[i]`). */
  entries: (SnapshotEntry & { sealed: boolean; blob?: string })[];
}

export async function readPart(env: Env, snapshotId: string, part: number): Promise<OpenedPart> {
  const read = SnapshotPart.parse(await readAuthenticatedJson(env, snapshotPartKey(snapshotId, part), `snapshot ${snapshotId} is missing part ${part}`));
  if ("entries" in read) return { ...read, entries: read.entries.map((e) => ({ ...e, sealed: false })) };
  const entries = z.array(SnapshotEntry).parse(await openJson(workerIdentities(env), read.entries_age));
  if (entries.length !== read.blobs.length) throw new AppError("manifest_invalid", `${snapshotPartKey(snapshotId, part)}: ${entries.length} entries but ${read.blobs.length} blobs`);
  return { snapshot_id: read.snapshot_id, part: read.part, entries: entries.map((e, i) => ({ ...e, sealed: true, blob: read.blobs[i]! })) };
}
