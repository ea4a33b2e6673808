// The storage part of a drill: the newest snapshot of a source (whole, or a
// deterministic sample of at most DR_STORAGE_SAMPLE objects: every k-th entry
// in key order) is restored into a scratch prefix of the scratch bucket with
// the storage restore's own copy (restoreBlob, decrypting format-2 blobs), each restored object's bytes
// are hashed against the manifest, and the prefix is removed afterwards.
// Nothing is ever written to the source bucket.
import type { BackupConfig } from "../config.ts";
import type { Env } from "../env.ts";
import type { SnapshotEntry } from "../shared/format.ts";
import type { DomainResult } from "./protocol.ts";
import { forEachLimited } from "../shared/concurrency.ts";
import { copyLimits, storageBucket } from "../storage/buckets.ts";
import { COPY_LANES } from "../storage/lanes.ts";
import { findBlob, hashObject, restoreBlob } from "../storage/objects.ts";
import { addressKey, workerIdentities } from "../storage/sealed.ts";
import { requireSecret } from "../jobs/dispatch.ts";
import { readManifest, readPart } from "../storage/snapshot.ts";
import type { DrSettings } from "./settings.ts";

export const SCRATCH_PREFIX = "dr-scratch/";

/** DR_CANARY's object in a storage source (schedule.ts writes it); its upload time is the canary's. */
export const canaryKey = (prefix: string) => `${prefix}astrid-dr-canary.json`;

export function scratchBucket(env: Env, config: BackupConfig, settings: DrSettings): R2Bucket | undefined {
  return settings.scratch_bucket === "BACKUPS" ? env.BACKUPS : storageBucket(env, config, settings.scratch_bucket);
}

export async function drillStorage(
  env: Env, config: BackupConfig, settings: DrSettings, runId: string, s: { bucket: string; prefix: string; snapshot_id: string },
): Promise<DomainResult> {
  const result: DomainResult = {
    domain: "storage", source: `${s.bucket}/${s.prefix}`, restore_point: s.snapshot_id, passed: false, restore_ms: 0, validate_ms: 0, bytes: 0, problems: [],
  };
  const target = scratchBucket(env, config, settings);
  if (!target || settings.scratch_bucket === s.bucket) {
    result.problems.push(`DR_SCRATCH_BUCKET ${settings.scratch_bucket} is not a usable scratch bucket (unknown, or the source itself)`);
    return result;
  }
  const prefix = `${SCRATCH_PREFIX}${runId}/`;
  const started = Date.now();
  try {
    const manifest = await readManifest(env, s.snapshot_id);
    result.point_created_at = manifest.created_at;
    const { sample, canary } = await sampleEntries(env, manifest.snapshot_id, manifest.parts, manifest.stats.objects, settings.storage_sample, canaryKey(s.prefix));
    await forEachLimited(sample, COPY_LANES, async (e) => {
      const problem = await restoreAndCheck(env, target, config, prefix, e);
      if (problem) result.problems.push(problem);
      else result.bytes += e.size;
    });
    result.details = { objects_in_snapshot: manifest.stats.objects, objects_checked: sample.length, scratch_prefix: prefix, ...(canary ? { newest_canary: canary } : {}) };
    result.restore_ms = Date.now() - started; // restore and hash check, object by object
  } catch (e) {
    result.problems.push(`snapshot ${s.snapshot_id}: ${(e as Error).message}`);
  } finally {
    const t = Date.now(); // validate_ms: the clean-up
    await removePrefix(target, prefix).catch((e) => result.problems.push(`could not remove ${prefix}: ${(e as Error).message}`));
    result.validate_ms = Date.now() - t;
  }
  result.problems.sort();
  result.passed = result.problems.length === 0;
  return result;
}

/**
 * Every k-th entry across the parts, k chosen so at most `max` come out: the
 * same sample for the same snapshot. Also the canary object's upload time, if
 * the snapshot holds one.
 */
async function sampleEntries(env: Env, snapshotId: string, parts: number, objects: number, max: number, canaryAt: string) {
  const stride = Math.max(1, Math.ceil(objects / max));
  const sample: DrillEntry[] = [];
  let canary: string | undefined;
  let index = 0;
  for (let n = 1; n <= parts; n++) {
    for (const e of (await readPart(env, snapshotId, n)).entries) {
      if (e.key === canaryAt) canary = e.uploaded;
      if (index++ % stride === 0 && sample.length < max) sample.push(e);
    }
  }
  return { sample, canary };
}

/** An entry and where its bytes are: a snapshot part says (format 2 or 1), a version row does not ("either"). */
export type DrillEntry = SnapshotEntry & { sealed: boolean | "either"; blob?: string };

/** Restores one object into the scratch prefix and checks its bytes; a problem line naming the object, or undefined. */
export async function restoreAndCheck(env: Env, target: R2Bucket, config: BackupConfig, prefix: string, e: DrillEntry): Promise<string | undefined> {
  const key = `${prefix}${e.key}`;
  const address = await addressKey(requireSecret(env.CHUNK_ID_KEY, "CHUNK_ID_KEY"));
  const blob = await findBlob(env.BACKUPS, address, e);
  if (!blob) return `object ${e.key}: its bytes (blob of ${e.sha256}) are missing from the backup bucket`;
  try {
    await restoreBlob(env.BACKUPS, () => workerIdentities(env), blob, target, key, e, copyLimits(config));
  } catch (err) {
    return `object ${e.key}: restore from blob ${e.sha256} failed: ${(err as Error).message}`;
  }
  const restored = await hashObject(target, key);
  if (restored.sha256 !== e.sha256 || restored.size !== e.size) return `object ${e.key}: restored bytes hash to ${restored.sha256}, the manifest says ${e.sha256}`;
  return undefined;
}

export async function removePrefix(bucket: R2Bucket, prefix: string): Promise<void> {
  for (;;) {
    const page = await bucket.list({ prefix, limit: 1000 });
    if (page.objects.length === 0) return;
    await bucket.delete(page.objects.map((o) => o.key));
  }
}
