// The R2 buckets this system protects, by name (STORAGE_BUCKETS maps each
// name to its Worker binding). The backup bucket itself is never one of them:
// a snapshot of, or restore into, the backup store is refused.
import type { BackupConfig } from "../config.ts";
import type { Env } from "../env.ts";
import type { StorageCatalog } from "../catalog/storage-catalog.ts";
import { AppError } from "../shared/errors.ts";

export function storageBucket(env: Env, config: BackupConfig, name: string): R2Bucket | undefined {
  const binding = config.storage_buckets[name];
  if (!binding || binding === "BACKUPS") return undefined;
  const bucket = env[binding] as R2Bucket | undefined;
  return bucket && typeof bucket === "object" && "head" in bucket ? bucket : undefined;
}

const notConfigured = (name: string) => `bucket "${name}" is not configured (STORAGE_BUCKETS)`;

/** The 404 the API answers for a bucket it does not protect; `field` names the request field that gave it. */
export function unknownBucket(name: string, field?: string): AppError {
  return new AppError("unknown_bucket", `${field ? `${field}: ` : ""}${notConfigured(name)}`, 404);
}

/** A configured bucket for a Worker-run step; otherwise the job fails at once (retrying cannot configure it). */
export function requireStepBucket(ctx: { env: Env; config: BackupConfig }, name: string): R2Bucket {
  const bucket = storageBucket(ctx.env, ctx.config, name);
  if (!bucket) throw new AppError("unknown_bucket", notConfigured(name));
  return bucket;
}

export interface Protection {
  versioning: boolean;
  replica?: string;
}

/** What capture does for a bucket: the API's switches, the static config, and the config's master switches. */
export async function protectionOf(config: BackupConfig, storage: StorageCatalog, bucket: string): Promise<Protection> {
  const row = await storage.protection(bucket);
  const replica = row?.replica_bucket ?? config.storage_replication[bucket];
  return {
    versioning: config.storage_versioning_enabled && (Boolean(row?.versioning_since) || config.storage_versioned_buckets.includes(bucket)),
    ...(config.storage_cross_region_replication && replica ? { replica } : {}),
  };
}

export function copyLimits(config: BackupConfig) {
  return {
    multipart_threshold_bytes: config.storage_multipart_threshold_bytes, part_size_bytes: config.storage_part_size_bytes,
    reuse_window_ms: (config.gc_grace_minutes * 60_000) / 2,
  };
}
