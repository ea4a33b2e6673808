// storage.restore: puts objects back from a snapshot, or from the version
// store as of a time, into the original bucket or another one: the whole
// source, a prefix, or one key. An object already there with the same bytes
// is left alone; one with other bytes is a conflict unless overwrite is set,
// so a restore never silently replaces newer data. Every object comes back
// with its metadata and is checked against its SHA-256 as it is written.
// A dry run reports what would happen and writes nothing.
import type { SnapshotEntry } from "../shared/format.ts";
import { StorageRestoreParams } from "./protocol.ts";
import { openStorageCatalog } from "../catalog/storage-catalog.ts";
import type { StepContext, StepOutcome } from "../jobs/kind.ts";
import { copyLimits, requireStepBucket } from "./buckets.ts";
import { findBlob, hashObject, restoreBlob, versionBlob } from "./objects.ts";
import { addressKey, workerIdentities } from "./sealed.ts";
import { requireSecret } from "../jobs/dispatch.ts";
import { COPY_LANES } from "./lanes.ts";
import { forEachLimited } from "../shared/concurrency.ts";
import { StoredObjectMeta } from "../shared/format.ts";
import { readManifest, readPart } from "./snapshot.ts";

interface RestoreState {
  /** Snapshot source: the next part to read and how far into it; versions source: the last key done. */
  part: number;
  offset: number;
  after: string;
  counts: { restored: number; unchanged: number; conflicts: number; missing: number; bytes: number };
  /** The first conflicting keys, for the operator. */
  conflict_keys: string[];
}

const CONFLICT_SAMPLE = 20;

export async function restoreStep(ctx: StepContext<StorageRestoreParams>): Promise<StepOutcome> {
  const p = ctx.params;
  const target = requireStepBucket(ctx, p.target_bucket);
  const state = (ctx.state as RestoreState | undefined) ?? {
    part: 1, offset: 0, after: "", counts: { restored: 0, unchanged: 0, conflicts: 0, missing: 0, bytes: 0 }, conflict_keys: [],
  };
  const { entries, more } = p.source.from === "snapshot" ? await fromSnapshot(ctx, p, state) : await fromVersions(ctx, p, state);
  const address = await addressKey(requireSecret(ctx.env.CHUNK_ID_KEY, "CHUNK_ID_KEY"));
  await forEachLimited(entries, COPY_LANES, (e) => restoreEntry(ctx, p, target, e, address, state));
  if (more) return { next: state, progress: { phase: p.dry_run ? "planning" : "restoring", bytes: state.counts.bytes, chunks: state.counts.restored } };
  const result = { kind: "storage.restore", dry_run: p.dry_run, target_bucket: p.target_bucket, ...state.counts, conflict_keys: state.conflict_keys };
  if (p.dry_run) return { done: result };
  if (state.counts.missing > 0 && p.source.from === "snapshot") {
    return {
      failed: { code: "restore_incomplete", message: `${state.counts.missing} objects' bytes are missing from the backup bucket (run a verify); the rest was restored` },
      result,
    };
  }
  if (state.counts.conflicts > 0) {
    return {
      failed: { code: "restore_conflicts", message: `${state.counts.conflicts} objects in ${p.target_bucket} differ from the backup and were left as they are (overwrite: true replaces them); the rest was restored` },
      result,
    };
  }
  return { done: result };
}

const wanted = (p: StorageRestoreParams, key: string) => key.startsWith(p.prefix) && (p.key === undefined || key === p.key);

/** Up to a page of matching entries from the snapshot's parts, resuming where the last step stopped. */
async function fromSnapshot(ctx: StepContext<StorageRestoreParams>, p: StorageRestoreParams, state: RestoreState) {
  if (p.source.from !== "snapshot") throw new Error("unreachable");
  const manifest = await readManifest(ctx.env, p.source.snapshot_id);
  const entries: RestoreEntry[] = [];
  const budget = ctx.config.storage_page_size;
  let partsRead = 0;
  while (state.part <= manifest.parts && entries.length < budget && partsRead < 50) {
    const part = await readPart(ctx.env, manifest.snapshot_id, state.part);
    partsRead += 1;
    while (state.offset < part.entries.length && entries.length < budget) {
      const e = part.entries[state.offset++]!;
      if (wanted(p, e.key)) entries.push(e);
    }
    if (state.offset >= part.entries.length) {
      state.part += 1;
      state.offset = 0;
    }
  }
  return { entries, more: state.part <= manifest.parts };
}

/** The newest version of each key as of the time, a page at a time; deleted or uncaptured keys are skipped. */
async function fromVersions(ctx: StepContext<StorageRestoreParams>, p: StorageRestoreParams, state: RestoreState) {
  if (p.source.from !== "versions") throw new Error("unreachable");
  const storage = openStorageCatalog(ctx.env.CATALOG);
  const rows = await storage.latestVersions({
    bucket: p.source.bucket, after: state.after, prefix: p.key ?? p.prefix, asOf: p.source.as_of, limit: ctx.config.storage_page_size,
  });
  const entries: RestoreEntry[] = [];
  for (const v of rows) {
    state.after = v.key;
    if (!wanted(p, v.key) || v.action === "delete") continue;
    if (!v.sha256 || v.size === null) {
      state.counts.missing += 1; // the event came after the bytes were already overwritten: nothing to restore
      continue;
    }
    entries.push({ key: v.key, size: v.size, etag: v.etag, sha256: v.sha256, uploaded: v.event_time, ...versionBlob(v.meta) });
  }
  return { entries, more: rows.length === ctx.config.storage_page_size };
}

/** A snapshot entry says where its blob is (its part's format and `blobs`); a version row captured before format 2 does not. */
type RestoreEntry = SnapshotEntry & { sealed: boolean | "either"; blob?: string };

async function restoreEntry(
  ctx: StepContext<StorageRestoreParams>, p: StorageRestoreParams, target: R2Bucket, e: RestoreEntry, address: (sha256: string) => Promise<string>, state: RestoreState,
) {
  const existing = await target.head(e.key);
  if (existing && existing.size === e.size && (existing.etag === e.etag || (await hashObject(target, e.key)).sha256 === e.sha256)) {
    state.counts.unchanged += 1;
    return;
  }
  if (existing && !p.overwrite) {
    state.counts.conflicts += 1;
    if (state.conflict_keys.length < CONFLICT_SAMPLE) state.conflict_keys.push(e.key);
    return;
  }
  if (!p.dry_run) {
    const blob = await findBlob(ctx.env.BACKUPS, address, e);
    if (!blob) {
      state.counts.missing += 1;
      return;
    }
    await restoreBlob(ctx.env.BACKUPS, () => workerIdentities(ctx.env), blob, target, e.key, e, copyLimits(ctx.config));
  }
  state.counts.restored += 1;
  state.counts.bytes += e.size;
}
