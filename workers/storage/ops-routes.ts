// Admin routes for storage operations: lifecycle rules (R2's S3 API), the cost
// report (R2 binding), one page of off-site copy (S3-compatible provider) and
// Bucket Locks (Cloudflare account API). Same auth, validation, audit and error
// shapes as the database routes: admin changes, viewer reads.
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../context.ts";
import { requireRole } from "../auth.ts";
import { AppError, badRequest } from "../shared/errors.ts";
import { parseJson, parseQuery } from "../http.ts";
import { CloudflareApiError, configureLocks, LockRule, LockRules, LockRulesError, LockWeakeningError } from "./bucket-lock.ts";
import { CostCursorError, costReport } from "./cost.ts";
import {
  applyLifecycle, backupBucketLifecycleProblems, diffLifecycle, isEmptyDiff, LifecycleRule, LifecycleRules, LifecycleRulesError, loadLifecycleRules, r2Part, readLifecycle,
  saveLifecycleRules, versionExpiryDays,
} from "./lifecycle.ts";
import { syncOffsitePage } from "./offsite.ts";
import { bucketLockApi, bucketName, isBackupBucket, offsiteTarget, r2S3Client, R2BucketName, resolveBucket } from "./ops-settings.ts";
import { S3Error, S3InputError } from "./s3/client.ts";

export const storageOpsRoutes = new Hono<AppEnv>();

export const BucketQuery = z.strictObject({ bucket: R2BucketName });

export const LifecycleRequest = z.strictObject({ bucket: R2BucketName, rules: LifecycleRules, dry_run: z.boolean().default(false) });

/** A lifecycle rule as R2 holds it (the version-store action is ours, not R2's). */
const R2Rule = z.strictObject({
  id: z.string(), prefix: z.string(), enabled: z.boolean(), expire_days: z.number().int().optional(),
  transition: z.strictObject({ days: z.number().int(), storage_class: z.string() }).optional(),
  abort_multipart_days: z.number().int().optional(), unsupported: z.array(z.string()).optional(),
});

/** Rules matched by id: what a call adds, removes, changes, leaves. */
const ruleDiff = <T extends z.ZodType>(rule: T) => z.strictObject({
  added: z.array(rule), removed: z.array(rule), changed: z.array(z.strictObject({ id: z.string(), before: rule, after: rule })), unchanged: z.array(z.string()),
});

export const LifecycleApplied = z.strictObject({
  bucket: z.string(), dry_run: z.boolean(), applied: z.boolean(), diff: ruleDiff(R2Rule), warnings: z.array(z.string()),
});

/** in_sync: R2 holds what was last applied here (false if someone changed it in the dashboard). */
export const LifecycleView = z.strictObject({
  bucket: z.string(), r2_rules: z.array(R2Rule), rules: z.array(LifecycleRule), in_sync: z.boolean(), version_store_default_days: z.number().int().nullable(),
});

storageOpsRoutes.put("/storage/lifecycle", requireRole("admin"), async (c) => {
  const body = await parseJson(c, LifecycleRequest);
  const bucket = bucketName(body.bucket, c.get("config"));
  // R2 would delete (or move) backups itself, past retention and its safeguards: refused whoever asks.
  const refused = isBackupBucket(bucket, c.get("config")) ? backupBucketLifecycleProblems(body.rules) : [];
  if (refused.length) {
    await c.get("catalog").audit({ actor: c.get("actor"), action: "storage.lifecycle", target: bucket, outcome: "denied", detail: { refused } });
    throw new AppError("protected_bucket", refused.join("; "), 403);
  }
  const client = r2S3Client(c.get("config"));
  const result = await mapped(() => applyLifecycle(client, bucket, body.rules, { dryRun: body.dry_run }));
  // The full rule set, with the version-store rules R2 never sees, is kept for the version store.
  if (!body.dry_run) {
    await saveLifecycleRules(c.env.BACKUPS, { bucket, rules: body.rules, updated_at: new Date().toISOString(), updated_by: c.get("actor") });
  }
  await c.get("catalog").audit({
    actor: c.get("actor"), action: "storage.lifecycle", target: bucket, outcome: "succeeded",
    detail: {
      dry_run: body.dry_run, applied: result.applied,
      added: result.diff.added.map((r) => r.id), removed: result.diff.removed.map((r) => r.id), changed: result.diff.changed.map((r) => r.id),
      version_rules: body.rules.filter((r) => r.version_expire_days).map((r) => r.id),
    },
  });
  const answer: z.infer<typeof LifecycleApplied> = result;
  return c.json(answer);
});

storageOpsRoutes.get("/storage/lifecycle", requireRole("viewer"), async (c) => {
  const q = parseQuery(c, BucketQuery);
  const bucket = bucketName(q.bucket, c.get("config"));
  const current = await mapped(() => readLifecycle(r2S3Client(c.get("config")), bucket));
  const stored = await loadLifecycleRules(c.env.BACKUPS, bucket);
  // in_sync: R2 holds what was last applied here (false if someone changed it in the dashboard).
  const answer: z.infer<typeof LifecycleView> = {
    bucket, r2_rules: current, rules: stored, in_sync: isEmptyDiff(diffLifecycle(current, r2Part(stored))),
    version_store_default_days: versionExpiryDays(stored, "") ?? null,
  };
  return c.json(answer);
});

export const CostQuery = z.strictObject({
  bucket: R2BucketName,
  prefix: z.string().max(1024).optional(),
  cursor: z.string().max(4096).optional(),
  free_tier: z.enum(["true", "false"]).transform((v) => v === "true").optional(),
});

/** Monthly storage cost if the bucket stays this size; complete is false while next_cursor has more pages to count. */
export const CostResponse = z.strictObject({
  bucket: z.string(),
  prefix: z.string().optional(),
  complete: z.boolean(),
  next_cursor: z.string().optional(),
  classes: z.array(z.strictObject({
    storage_class: z.enum(["Standard", "InfrequentAccess"]), objects: z.number().int(), bytes: z.number().int(),
    gb: z.number(), billable_gb_month: z.number(), monthly_usd: z.number(),
  })),
  monthly_usd: z.number(),
  prices: z.strictObject({
    source: z.string(), as_of: z.string(), currency: z.string(),
    storage_per_gb_month: z.record(z.string(), z.number()), free_gb_month: z.record(z.string(), z.number()), bytes_per_gb: z.number(),
  }),
  free_tier_applied: z.boolean(),
});

storageOpsRoutes.get("/storage/cost", requireRole("viewer"), async (c) => {
  const q = parseQuery(c, CostQuery);
  const { name, bucket } = resolveBucket(c.env, q.bucket, c.get("config"));
  const answer: z.infer<typeof CostResponse> = await mapped(() => costReport(bucket, name, { prefix: q.prefix, cursor: q.cursor, applyFreeTier: q.free_tier }));
  return c.json(answer);
});

export const OffsiteRequest = z.strictObject({
  prefix: z.string().max(1024).optional(),
  cursor: z.string().max(4096).optional(),
  // Each object costs a HEAD and a PUT (more for multipart): keep a call within the Worker's subrequest limit.
  limit: z.number().int().min(1).max(200).default(50),
});

/** One page of the off-site copy; next_cursor continues. */
export const OffsitePageResponse = z.strictObject({
  source: z.string(), destination: z.string(),
  listed: z.number().int(), copied: z.number().int(), skipped: z.number().int(), bytes: z.number().int(),
  /** Objects that changed or vanished between list and read; the next pass copies their new version. */
  changed: z.array(z.string()),
  failed: z.array(z.strictObject({ key: z.string(), error: z.string() })),
  multipart: z.number().int(),
  next_cursor: z.string().optional(),
});

storageOpsRoutes.post("/storage/offsite", requireRole("admin"), async (c) => {
  const body = await parseJson(c, OffsiteRequest);
  const target = offsiteTarget(c.get("config"));
  const { name } = resolveBucket(c.env, "BACKUPS", c.get("config"));
  const actor = c.get("actor");
  try {
    const page = await mapped(() => syncOffsitePage(c.env.BACKUPS, target, { prefix: body.prefix, cursor: body.cursor, limit: body.limit }));
    await c.get("catalog").audit({
      actor, action: "storage.offsite", target: `${name} -> ${target.bucket}`, outcome: "succeeded",
      detail: { prefix: body.prefix ?? "", copied: page.copied, skipped: page.skipped, bytes: page.bytes, failed: page.failed.length, more: Boolean(page.next_cursor) },
    });
    const answer: z.infer<typeof OffsitePageResponse> = { source: name, destination: target.bucket, ...page };
    return c.json(answer);
  } catch (e) {
    await c.get("catalog").audit({
      actor, action: "storage.offsite", target: `${name} -> ${target.bucket}`, outcome: "failed",
      detail: { prefix: body.prefix ?? "", error: e instanceof AppError ? e.code : "internal" },
    });
    throw e;
  }
});

export const LocksRequest = z.strictObject({ bucket: R2BucketName.default("BACKUPS"), rules: LockRules, dry_run: z.boolean().default(false) });
export const LocksQuery = z.strictObject({ bucket: R2BucketName.default("BACKUPS") });
export const LocksApplied = z.strictObject({ bucket: z.string(), dry_run: z.boolean(), applied: z.boolean(), diff: ruleDiff(LockRule), rules: z.array(LockRule) });
export const LocksView = z.strictObject({ bucket: z.string(), rules: z.array(LockRule) });

storageOpsRoutes.put("/storage/locks", requireRole("admin"), async (c) => {
  const body = await parseJson(c, LocksRequest);
  const bucket = bucketName(body.bucket, c.get("config"));
  let result;
  try {
    result = await mapped(() => configureLocks(bucketLockApi(c.env, c.get("config")), bucket, body.rules, { dryRun: body.dry_run }));
  } catch (e) {
    if (!(e instanceof LockWeakeningError)) throw e;
    await c.get("catalog").audit({ actor: c.get("actor"), action: "storage.locks", target: bucket, outcome: "denied", detail: { refused: e.problems } });
    throw new AppError("lock_weakening_refused", e.message, 403);
  }
  await c.get("catalog").audit({
    actor: c.get("actor"), action: "storage.locks", target: bucket, outcome: "succeeded",
    detail: {
      dry_run: body.dry_run, applied: result.applied,
      added: result.diff.added.map((r) => r.id), removed: result.diff.removed.map((r) => r.id), changed: result.diff.changed.map((r) => r.id),
    },
  });
  const answer: z.infer<typeof LocksApplied> = result;
  return c.json(answer);
});

storageOpsRoutes.get("/storage/locks", requireRole("viewer"), async (c) => {
  const q = parseQuery(c, LocksQuery);
  const bucket = bucketName(q.bucket, c.get("config"));
  const answer: z.infer<typeof LocksView> = { bucket, rules: await mapped(() => bucketLockApi(c.env, c.get("config")).get(bucket)) };
  return c.json(answer);
});

const S3_AUTH_CODES = new Set(["InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "Unauthorized", "Forbidden"]);

/** Errors of the storage clients as API errors; their messages carry no credentials. */
async function mapped<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof AppError) throw e;
    if (e instanceof LifecycleRulesError || e instanceof LockRulesError || e instanceof S3InputError || e instanceof CostCursorError) {
      throw badRequest(e.message);
    }
    if (e instanceof S3Error) {
      if (e.code === "NoSuchBucket") throw new AppError("unknown_bucket", e.message, 404);
      if (S3_AUTH_CODES.has(e.code)) throw new AppError("s3_access_denied", e.message, 502);
      if (e.code === "NetworkError") throw new AppError("s3_unreachable", e.message, 502);
      throw new AppError("s3_error", e.message, 502);
    }
    if (e instanceof CloudflareApiError) {
      const code = e.status === 401 || e.status === 403 ? "cloudflare_access_denied" : e.status === 404 ? "unknown_bucket" : "cloudflare_api_error";
      throw new AppError(code, e.message, e.status === 404 ? 404 : 502);
    }
    throw e;
  }
}
