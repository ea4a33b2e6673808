// The objects_overwritten scenario, on a scratch prefix: each versioned
// source's objects as the version store has them now are put into
// dr-scratch/<run>/ (standing in for production), overwritten there with bad
// bytes (the disaster), then recovered with an as-of restore from the
// version store (as of the moment before the overwrite), exactly as
// POST /storage/restore does it; every recovered object must hash to its
// captured version. The source bucket is only read.
import type { BackupConfig } from "../config.ts";
import { openStorageCatalog } from "../catalog/storage-catalog.ts";
import type { Env } from "../env.ts";
import { versionBlob } from "../storage/objects.ts";
import type { DomainResult } from "./protocol.ts";
import { forEachLimited } from "../shared/concurrency.ts";
import { COPY_LANES } from "../storage/lanes.ts";
import type { DrSettings } from "./settings.ts";
import { removePrefix, restoreAndCheck, scratchBucket, SCRATCH_PREFIX, type DrillEntry } from "./storage-check.ts";

export async function drillOverwrite(env: Env, config: BackupConfig, settings: DrSettings, runId: string, bucket: string, prefix: string): Promise<DomainResult> {
  const result: DomainResult = { domain: "storage", source: `${bucket}/${prefix}`, passed: false, restore_ms: 0, validate_ms: 0, bytes: 0, problems: [] };
  const target = scratchBucket(env, config, settings);
  if (!target || settings.scratch_bucket === bucket) {
    result.problems.push(`DR_SCRATCH_BUCKET ${settings.scratch_bucket} is not a usable scratch bucket`);
    return result;
  }
  const scratch = `${SCRATCH_PREFIX}${runId}/`;
  const asOf = new Date().toISOString();
  const steps: { name: string; ms: number; ok: boolean }[] = [];
  try {
    const rows = await openStorageCatalog(env.CATALOG).latestVersions({ bucket, after: "", prefix, asOf, limit: settings.storage_sample });
    const entries: DrillEntry[] = rows.filter((v) => v.action === "put" && v.sha256 && v.size !== null).map((v) => ({
      key: v.key, size: v.size!, etag: v.etag, sha256: v.sha256!, uploaded: v.event_time, ...versionBlob(v.meta),
    }));
    if (entries.length === 0) throw new Error(`the version store holds no captured object of ${bucket}/${prefix}: is versioning on?`);
    let t = Date.now();
    await forEachLimited(entries, COPY_LANES, async (e) => {
      const problem = await restoreAndCheck(env, target, config, scratch, e);
      if (problem) result.problems.push(`copying production: ${problem}`);
    });
    steps.push({ name: `copy ${entries.length} objects of ${bucket}/${prefix} to ${scratch}`, ms: Date.now() - t, ok: result.problems.length === 0 });
    t = Date.now();
    await forEachLimited(entries, COPY_LANES, (e) => target.put(`${scratch}${e.key}`, `overwritten by the objects_overwritten drill at ${asOf}`));
    steps.push({ name: "simulate: overwrite every copied object with bad bytes", ms: Date.now() - t, ok: true });
    t = Date.now();
    await forEachLimited(entries, COPY_LANES, async (e) => {
      const problem = await restoreAndCheck(env, target, config, scratch, e);
      if (problem) result.problems.push(problem);
      else result.bytes += e.size;
    });
    result.restore_ms = Date.now() - t;
    steps.push({ name: `recover: as-of restore (${asOf}) from the version store`, ms: result.restore_ms, ok: result.problems.length === 0 });
    result.point_created_at = asOf;
    result.details = { objects_checked: entries.length, steps };
  } catch (e) {
    result.problems.push((e as Error).message);
  } finally {
    const t = Date.now();
    await removePrefix(target, scratch).catch((e) => result.problems.push(`could not remove ${scratch}: ${(e as Error).message}`));
    result.validate_ms = Date.now() - t;
  }
  result.passed = result.problems.length === 0;
  return result;
}
