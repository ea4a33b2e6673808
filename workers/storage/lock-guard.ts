// What retention and garbage collection ask before deleting anything from the
// backup bucket: is this object inside a Bucket Lock retention window? R2 would
// refuse the delete anyway; asking first lets them skip (and say so) instead
// of failing half-way. No lock API configured means no locks. A configured
// API that cannot be read fails the caller: deleting blind is not an option.
import type { BackupConfig } from "../config.ts";
import type { Env } from "../env.ts";
import { AppError } from "../shared/errors.ts";
import { isLocked } from "./bucket-lock.ts";
import { bucketLockApi } from "./ops-settings.ts";

/** True if the object must not be deleted now. */
export type LockGuard = (key: string, uploaded: Date) => boolean;

/** Deciding an hour late keeps clear of clock skew at a window's end. */
const SKEW_MS = 60 * 60 * 1000;

/** The guard, or null when no rule exists (callers then skip looking up upload times). */
export async function backupBucketLocks(env: Env, config: BackupConfig, now: Date): Promise<LockGuard | null> {
  let api;
  try {
    api = bucketLockApi(env, config);
  } catch (e) {
    if (e instanceof AppError && e.code === "not_configured") return null;
    throw e;
  }
  let rules;
  try {
    rules = (await api.get(config.backup_storage_bucket)).filter((r) => r.enabled);
  } catch (e) {
    throw new AppError("bucket_lock_unavailable", `the Bucket Lock rules could not be read (${(e as Error).name}); nothing was deleted`, 502);
  }
  if (rules.length === 0) return null;
  const at = new Date(now.getTime() + SKEW_MS);
  return (key, uploaded) => isLocked(rules, key, uploaded, at);
}
