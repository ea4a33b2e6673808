// Settings of the storage operations (lifecycle, cost, off-site copy, bucket
// locks), read from the Worker's env. Each is optional: a route whose settings
// are missing answers 503 not_configured naming the variables, and the rest of
// the Worker is unaffected. Secrets are only handed to the clients; they never
// appear in a response, an error message or a log line.
import { z } from "zod";
import { SETTINGS, type BackupConfig } from "../config.ts";
import type { Env } from "../env.ts";
import { AppError } from "../shared/errors.ts";
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
  new AppError("not_configured", `${what} is not configured: set ${missing.join(", ")}`, 503);

/** The named settings' values, or 503 not_configured naming the variables that are missing. */
function required<K extends keyof typeof SETTINGS>(config: BackupConfig, fields: K[], what: string): Pick<BackupConfig, K> {
  const missing = fields.filter((f) => String(config[f]).trim() === "").map((f) => SETTINGS[f].env);
  if (missing.length) throw notConfigured(what, missing);
  return Object.fromEntries(fields.map((f) => [f, String(config[f]).trim()])) as Pick<BackupConfig, K>;
}

/** The backup bucket's real name for "BACKUPS" or its own name; other names pass through. */
export const bucketName = (name: string, config: BackupConfig) => (name === BACKUPS_ALIAS ? config.backup_storage_bucket : name);

/** A client for R2's S3 API (lifecycle configuration). */
export function r2S3Client(config: BackupConfig): S3Client {
  const s = required(config, ["r2_s3_endpoint", "r2_access_key_id", "r2_secret_access_key"], "R2's S3 API");
  return new S3Client({ endpoint: s.r2_s3_endpoint, accessKeyId: s.r2_access_key_id, secretAccessKey: s.r2_secret_access_key, region: "auto" });
}

/** Whether an off-site destination is configured (the off-site schedule does nothing otherwise). */
export const offsiteConfigured = (config: BackupConfig) => config.offsite_s3_endpoint !== "";

/** The off-site S3 destination. OFFSITE_S3_REGION defaults to us-east-1; OFFSITE_S3_PREFIX is optional. */
export function offsiteTarget(config: BackupConfig): S3Target {
  const s = required(config, ["offsite_s3_endpoint", "offsite_s3_bucket", "offsite_access_key_id", "offsite_secret_access_key"], "the off-site copy");
  return {
    client: new S3Client({
      endpoint: s.offsite_s3_endpoint, accessKeyId: s.offsite_access_key_id, secretAccessKey: s.offsite_secret_access_key, region: config.offsite_s3_region,
    }),
    bucket: s.offsite_s3_bucket,
    ...(config.offsite_s3_prefix ? { prefix: config.offsite_s3_prefix } : {}),
  };
}

/**
 * The Bucket Lock API. The BUCKET_LOCK_API binding may hold an object
 * implementing BucketLockApi (only in-process code can set a non-string
 * binding: the tests, or a local mode without a Cloudflare account);
 * otherwise the Cloudflare account API with CLOUDFLARE_ACCOUNT_ID and
 * CLOUDFLARE_API_TOKEN.
 */
export function bucketLockApi(env: Env, config: BackupConfig): BucketLockApi {
  const injected = env.BUCKET_LOCK_API as Partial<BucketLockApi> | undefined;
  if (injected && typeof injected === "object" && typeof injected.get === "function" && typeof injected.put === "function") {
    return injected as BucketLockApi;
  }
  const s = required(config, ["cloudflare_account_id", "cloudflare_api_token"], "the Cloudflare account API (bucket locks)");
  return new CloudflareBucketLockApi({
    accountId: s.cloudflare_account_id, apiToken: s.cloudflare_api_token, ...(config.r2_jurisdiction ? { jurisdiction: config.r2_jurisdiction } : {}),
  });
}

/** The R2 binding for a bucket named in a request: the backup bucket (by name or "BACKUPS") or a configured storage bucket. */
export function resolveBucket(env: Env, name: string, config: BackupConfig): { name: string; bucket: R2Bucket } {
  if (name === BACKUPS_ALIAS || name === config.backup_storage_bucket) return { name: config.backup_storage_bucket, bucket: env.BACKUPS };
  const bucket = storageBucket(env, config, name);
  if (!bucket) throw unknownBucket(name);
  return { name, bucket };
}
