// Settings of the storage operations (lifecycle, cost, off-site copy, bucket
// locks), read from the Worker's env. Each is optional: a route whose settings
// are missing answers 503 not_configured naming the variables, and the rest of
// the Worker is unaffected. Secrets are only handed to the clients; they never
// appear in a response, an error message or a log line.
import { z } from "zod";
import type { BackupConfig } from "../config.ts";
import type { Env } from "../env.ts";
import { ApiError } from "../errors.ts";
import { CloudflareBucketLockApi, type BucketLockApi } from "./bucket-lock.ts";
import type { S3Target } from "./offsite.ts";
import { S3Client } from "./s3/client.ts";
import { BucketName } from "../shared/format.ts";
import { storageBucket, unknownBucket } from "./buckets.ts";

/** The binding name, accepted as an alias for the backup bucket. */
export const BACKUPS_ALIAS = "BACKUPS";

/** An R2 bucket name (format.ts), or the backup bucket's binding name. */
export const R2BucketName = z.string().refine(
  (s) => s === BACKUPS_ALIAS || BucketName.safeParse(s).success,
  "not a valid R2 bucket name (3-63 lowercase letters, digits and hyphens)",
);

const notConfigured = (what: string, missing: string[]) =>
  new ApiError(503, "not_configured", `${what} is not configured: set ${missing.join(", ")}`);

function settings(env: Env, names: string[], what: string): Record<string, string> {
  const out: Record<string, string> = {};
  const missing: string[] = [];
  for (const n of names) {
    const v = env[n];
    if (typeof v === "string" && v.trim() !== "") out[n] = v.trim();
    else missing.push(n);
  }
  if (missing.length) throw notConfigured(what, missing);
  return out;
}

/**
 * The real name of a bucket named in a request: the backup bucket ("BACKUPS"
 * or its name) or a bucket in STORAGE_BUCKETS. Any other name is refused (404
 * unknown_bucket), even if the account's credentials would reach it: the
 * admin API manages the buckets this system protects, nothing else.
 */
export function bucketName(name: string, config: BackupConfig): string {
  if (name === BACKUPS_ALIAS || name === config.backup_storage_bucket) return config.backup_storage_bucket;
  if (!config.storage_buckets[name]) throw unknownBucket(name);
  return name;
}

export const isBackupBucket = (name: string, config: BackupConfig) => name === config.backup_storage_bucket;

/** A client for R2's S3 API (lifecycle configuration). */
export function r2S3Client(env: Env): S3Client {
  const s = settings(env, ["R2_S3_ENDPOINT", "R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY"], "R2's S3 API");
  return new S3Client({ endpoint: s.R2_S3_ENDPOINT!, accessKeyId: s.R2_ACCESS_KEY_ID!, secretAccessKey: s.R2_SECRET_ACCESS_KEY!, region: "auto" });
}

/** The off-site S3 destination. OFFSITE_S3_REGION defaults to us-east-1; OFFSITE_S3_PREFIX is optional. */
export function offsiteTarget(env: Env): S3Target {
  const s = settings(env, ["OFFSITE_S3_ENDPOINT", "OFFSITE_S3_BUCKET", "OFFSITE_ACCESS_KEY_ID", "OFFSITE_SECRET_ACCESS_KEY"], "the off-site copy");
  const region = typeof env.OFFSITE_S3_REGION === "string" && env.OFFSITE_S3_REGION ? env.OFFSITE_S3_REGION : "us-east-1";
  const prefix = typeof env.OFFSITE_S3_PREFIX === "string" ? env.OFFSITE_S3_PREFIX : "";
  return {
    client: new S3Client({ endpoint: s.OFFSITE_S3_ENDPOINT!, accessKeyId: s.OFFSITE_ACCESS_KEY_ID!, secretAccessKey: s.OFFSITE_SECRET_ACCESS_KEY!, region }),
    bucket: s.OFFSITE_S3_BUCKET!,
    ...(prefix ? { prefix } : {}),
  };
}

/**
 * The Bucket Lock API. BUCKET_LOCK_API may hold an object implementing
 * BucketLockApi (only in-process code can set a non-string binding: the
 * tests, or a local mode without a Cloudflare account); otherwise the
 * Cloudflare account API with CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN.
 */
export function bucketLockApi(env: Env): BucketLockApi {
  const injected = env.BUCKET_LOCK_API as Partial<BucketLockApi> | undefined;
  if (injected && typeof injected === "object" && typeof injected.get === "function" && typeof injected.put === "function") {
    return injected as BucketLockApi;
  }
  const s = settings(env, ["CLOUDFLARE_ACCOUNT_ID", "CLOUDFLARE_API_TOKEN"], "the Cloudflare account API (bucket locks)");
  const jurisdiction = typeof env.R2_JURISDICTION === "string" && env.R2_JURISDICTION ? env.R2_JURISDICTION : undefined;
  return new CloudflareBucketLockApi({ accountId: s.CLOUDFLARE_ACCOUNT_ID!, apiToken: s.CLOUDFLARE_API_TOKEN!, ...(jurisdiction ? { jurisdiction } : {}) });
}

/** The R2 binding for a bucket named in a request: the backup bucket (by name or "BACKUPS") or a configured storage bucket. */
export function resolveBucket(env: Env, name: string, config: BackupConfig): { name: string; bucket: R2Bucket } {
  if (name === BACKUPS_ALIAS || name === config.backup_storage_bucket) return { name: config.backup_storage_bucket, bucket: env.BACKUPS };
  const bucket = storageBucket(env, config, name);
  if (!bucket) throw unknownBucket(name);
  return { name, bucket };
}
