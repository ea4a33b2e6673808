// storage.gc: deletes blobs no snapshot part and no version references.
// It needs no age identity: format-2 parts list their blob addresses in the clear.
//
// Mark: every part file under manifests/storage/ counts, complete snapshot or
// not (a snapshot still running references blobs through the parts it has
// written), and so does every version row. Marks are the first 16 hex digits
// of each hash, kept between steps in one object in the backup bucket (about
// 17 bytes per blob: millions of blobs fit a Worker; a collision only keeps garbage).
// Sweep: a blob is deleted only if unmarked and older than the grace period,
// so a blob written by a snapshot after its part was listed here survives.
// A part file of a snapshot that never finished (no top manifest, older than
// the grace period, no job running it) is removed too.
import { z } from "zod";
import { openStorageCatalog } from "../catalog/storage-catalog.ts";
import { SnapshotPart, snapshotManifestKey, STORAGE_BLOB_PREFIX, STORAGE_MANIFEST_PREFIX } from "../shared/format.ts";
import type { StepContext, StepOutcome } from "../jobs/kind.ts";
import { backupBucketLocks } from "./lock-guard.ts";
import { addressKey } from "./sealed.ts";
import { requireSecret } from "../jobs/dispatch.ts";


export const StorageGcParams = z.object({ grace_minutes: z.number().int().nonnegative(), dry_run: z.boolean() });
export type StorageGcParams = z.infer<typeof StorageGcParams>;

interface GcState {
  phase: "mark-parts" | "mark-versions" | "sweep";
  cursor?: string;
  after: string;
  marks_key: string;
  counts: { parts: number; marked: number; blobs: number; deleted: number; reclaimed_bytes: number; kept_young: number; kept_locked: number; orphan_parts: number };
}

const PARTS_PER_STEP = 200;
const MARK = 16;

export async function storageGcStep(ctx: StepContext<StorageGcParams>): Promise<StepOutcome> {
  const p = ctx.params;
  const state = (ctx.state as GcState | undefined) ?? {
    phase: "mark-parts", after: "", marks_key: `tmp/storage-gc/${ctx.job.id}.json`,
    counts: { parts: 0, marked: 0, blobs: 0, deleted: 0, reclaimed_bytes: 0, kept_young: 0, kept_locked: 0, orphan_parts: 0 },
  };
  const graceCutoff = ctx.now.getTime() - p.grace_minutes * 60_000;
  const marks = await loadMarks(ctx.env.BACKUPS, state.marks_key);
  const progress = { phase: state.phase, bytes: state.counts.reclaimed_bytes, chunks: state.counts.deleted };

  if (state.phase === "mark-parts") {
    const page = await ctx.env.BACKUPS.list({ prefix: STORAGE_MANIFEST_PREFIX, cursor: state.cursor, limit: PARTS_PER_STEP });
    for (const obj of page.objects) {
      if (!obj.key.includes("/part-")) continue;
      const snapshotId = obj.key.slice(STORAGE_MANIFEST_PREFIX.length).split("/")[0]!;
      if (await isAbandoned(ctx, snapshotId, obj, graceCutoff)) {
        state.counts.orphan_parts += 1;
        if (!p.dry_run) await ctx.env.BACKUPS.delete(obj.key);
        continue;
      }
      const part = SnapshotPart.parse(await (await ctx.env.BACKUPS.get(obj.key))!.json());
      // Format 2 lists its (keyed) blob addresses in the clear; format 1 names plaintext blobs by SHA-256.
      for (const name of "blobs" in part ? part.blobs : part.entries.map((e) => e.sha256)) marks.add(name.slice(0, MARK));
      state.counts.parts += 1;
    }
    await saveMarks(ctx.env.BACKUPS, state.marks_key, marks);
    if (page.truncated) return { next: { ...state, cursor: page.cursor }, progress };
    return { next: { ...state, phase: "mark-versions", cursor: undefined }, progress };
  }
  if (state.phase === "mark-versions") {
    const { hashes, blobs } = await openStorageCatalog(ctx.env.CATALOG).versionBlobs(state.after, 5000);
    // A version captured since format 2 records its blob's address; one captured before names a plaintext blob by its
    // SHA-256. The current key's address of every hash is kept too: a restore of a row without a recorded address
    // looks there first (GC errs on the side of keeping).
    const address = await addressKey(requireSecret(ctx.env.CHUNK_ID_KEY, "CHUNK_ID_KEY"));
    for (const name of [...hashes, ...blobs]) marks.add(name.slice(0, MARK));
    for (const h of hashes) marks.add((await address(h)).slice(0, MARK));
    await saveMarks(ctx.env.BACKUPS, state.marks_key, marks);
    if (hashes.length === 5000) return { next: { ...state, after: hashes.at(-1)! }, progress };
    return { next: { ...state, phase: "sweep", after: "" }, progress };
  }
  const page = await ctx.env.BACKUPS.list({ prefix: STORAGE_BLOB_PREFIX, cursor: state.cursor, limit: 1000 });
  const locked = await backupBucketLocks(ctx.env, ctx.config, ctx.now);
  const doomed: string[] = [];
  for (const blob of page.objects) {
    state.counts.blobs += 1;
    if (marks.has(blob.key.slice(blob.key.lastIndexOf("/") + 1).slice(0, MARK))) continue;
    if (blob.uploaded.getTime() > graceCutoff) {
      state.counts.kept_young += 1;
      continue;
    }
    if (locked?.(blob.key, blob.uploaded)) {
      state.counts.kept_locked += 1;
      continue;
    }
    doomed.push(blob.key);
    state.counts.deleted += 1;
    state.counts.reclaimed_bytes += blob.size;
  }
  if (!p.dry_run && doomed.length) await ctx.env.BACKUPS.delete(doomed);
  if (page.truncated) return { next: { ...state, cursor: page.cursor }, progress };
  state.counts.marked = marks.size;
  await ctx.env.BACKUPS.delete(state.marks_key);
  return { done: { kind: "storage.gc", dry_run: p.dry_run, ...state.counts } };
}

/** A part whose snapshot has no manifest, is older than the grace period, and whose job is not running. */
async function isAbandoned(ctx: StepContext<StorageGcParams>, snapshotId: string, part: R2Object, graceCutoff: number): Promise<boolean> {
  if (part.uploaded.getTime() > graceCutoff) return false;
  if (await ctx.env.BACKUPS.head(snapshotManifestKey(snapshotId))) return false;
  const running = await ctx.env.CATALOG.prepare(
    "SELECT 1 FROM jobs WHERE kind = 'storage.snapshot' AND status IN ('queued', 'running') AND json_extract(params, '$.snapshot_id') = ?",
  ).bind(snapshotId).first();
  return !running;
}

async function loadMarks(backups: R2Bucket, key: string): Promise<Set<string>> {
  const obj = await backups.get(key);
  return new Set(obj ? ((await obj.json()) as string[]) : []);
}

async function saveMarks(backups: R2Bucket, key: string, marks: Set<string>): Promise<void> {
  await backups.put(key, JSON.stringify([...marks]));
}
