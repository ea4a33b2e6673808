// Admin routes for R2 storage (ASTR-112's StorageBackupService over HTTP):
// snapshots and their restore, versioning, replication, reconciliation and
// the write-through route for exact versioning.
import { Hono, type Context } from "hono";
import { z } from "zod";
import type { AppEnv } from "../context.ts";
import { requireRole } from "../auth.ts";
import { AppError, badRequest, notFound } from "../shared/errors.ts";
import { accepted, AcceptedResponse, kindContext, parseJson, parseQuery } from "../http.ts";
import { submitJob } from "../jobs/submit.ts";
import type { JobKindSpec } from "../jobs/kind.ts";
import { storageGc, storageOffsite, storageReconcile, storageRestore, submitSnapshot } from "./kinds.ts";
import { openStorageCatalog } from "../catalog/storage-catalog.ts";
import { BucketName, SnapshotId } from "../shared/format.ts";
import { ObjectKey, ObjectPrefix } from "../shared/protocol.ts";
import { protectionOf, storageBucket, unknownBucket } from "./buckets.ts";
import { handleEvent, STORAGE_EVENTS_QUEUE } from "./capture.ts";
import { replicationStatus, storageStatus } from "./status.ts";
import { applyStorageRetention } from "./retention.ts";
import { offsiteTarget } from "./ops-settings.ts";

export const storageRoutes = new Hono<AppEnv>();
type Ctx = Context<AppEnv>;

/** A configured bucket, or 404 unknown_bucket (400 for a name that cannot be a bucket at all). */
function requireBucket(c: Ctx, name: string, field = "bucket"): R2Bucket {
  if (!BucketName.safeParse(name).success) throw badRequest(`${field}: "${name}" is not a valid bucket name`);
  if (name === c.get("config").backup_storage_bucket) {
    throw new AppError("backup_bucket", `${field}: "${name}" is the backup bucket itself; it is protected by the database/storage backups, not a source or target`, 400);
  }
  const bucket = storageBucket(c.env, c.get("config"), name);
  if (!bucket) throw unknownBucket(name, field);
  return bucket;
}

async function startJob<P>(c: Ctx, spec: JobKindSpec<P>, params: z.input<JobKindSpec<P>["params"]>, target: string) {
  return accepted(await submitJob(kindContext(c), spec, params, { actor: c.get("actor"), target }));
}

/** POST /backup/storage's answer: one job per bucket (and prefix) snapshotted. */
export const SnapshotAccepted = z.strictObject({ jobs: z.array(AcceptedResponse.extend({ snapshot_id: z.string() })) });

export const SnapshotRequest = z.strictObject({ bucket: z.string().optional(), prefix: ObjectPrefix.default("") });

storageRoutes.post("/backup/storage", requireRole("admin"), async (c) => {
  const body = await parseJson(c, SnapshotRequest);
  if (!body.bucket && body.prefix) throw badRequest("prefix: give the bucket it belongs to");
  const sources = body.bucket ? [{ bucket: body.bucket, prefix: body.prefix }] : c.get("config").storage_backup_sources;
  if (sources.length === 0) throw badRequest("no bucket given and STORAGE_BACKUP_SOURCES/STORAGE_BUCKETS name none");
  for (const s of sources) requireBucket(c, s.bucket);
  const answer: z.infer<typeof SnapshotAccepted> = { jobs: [] };
  for (const s of sources) {
    const { job, snapshot_id } = await submitSnapshot(kindContext(c), s, c.get("actor"));
    answer.jobs.push({ ...accepted({ job }), snapshot_id });
  }
  return c.json(answer, 202);
});

export const CleanupRequest = z.strictObject({
  retention_days: z.number().int().min(1).max(36500).optional(),
  version_retention_days: z.number().int().min(1).max(36500).optional(),
  dry_run: z.boolean().default(false),
});

export const StorageCleanupResponse = z.strictObject({
  dry_run: z.boolean(),
  retention_days: z.number().int(),
  version_retention_days: z.number().int(),
  removed_snapshots: z.array(z.string()),
  /** Expired, but kept: inside a Bucket Lock retention window. */
  locked_snapshots: z.number().int(),
  removed_versions: z.number().int(),
});

/** Retention: each field omitted falls back to STORAGE_RETENTION_DAYS / STORAGE_VERSION_RETENTION_DAYS. */
storageRoutes.post("/backup/storage/cleanup", requireRole("admin"), async (c) => {
  const body = await parseJson(c, CleanupRequest);
  const outcome = await applyStorageRetention(c.env, c.get("config"), {
    retentionDays: body.retention_days, versionRetentionDays: body.version_retention_days, dryRun: body.dry_run,
  }, new Date());
  await c.get("catalog").audit({ actor: c.get("actor"), action: "storage.cleanup", target: "storage snapshots and versions", outcome: "succeeded", detail: outcome });
  const answer: z.infer<typeof StorageCleanupResponse> = outcome;
  return c.json(answer);
});

export const GcRequest = z.strictObject({ grace_minutes: z.number().int().min(0).max(525_600).optional(), dry_run: z.boolean().default(false) });

storageRoutes.post("/storage/gc", requireRole("admin"), async (c) => {
  const body = await parseJson(c, GcRequest);
  const floor = c.get("config").gc_grace_minutes;
  // Event capture may be referencing a blob it has just stored: never collect inside the configured grace.
  if (body.grace_minutes !== undefined && body.grace_minutes < floor) {
    throw badRequest(`grace_minutes: at least GC_GRACE_MINUTES (${floor}); blobs younger than that may be in use`);
  }
  const params = { grace_minutes: body.grace_minutes ?? floor, dry_run: body.dry_run };
  return c.json(await startJob(c, storageGc, params, "storage blobs"), 202);
});

/** The whole backup bucket (or a prefix) to the off-site provider, as a job (POST /storage/offsite runs one page inline). */
export const OffsiteSyncRequest = z.strictObject({ prefix: ObjectPrefix.default("") });

storageRoutes.post("/storage/offsite/sync", requireRole("admin"), async (c) => {
  const body = await parseJson(c, OffsiteSyncRequest);
  offsiteTarget(c.get("config")); // 503 not_configured now, rather than a failed job later
  return c.json(await startJob(c, storageOffsite, { prefix: body.prefix }, "off-site copy"), 202);
});

export const ListQuery = z.strictObject({
  bucket: BucketName.optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  before: SnapshotId.optional(),
});

/** A storage snapshot's catalog row. */
export const SnapshotView = z.strictObject({
  id: z.string(), bucket: z.string(), prefix: z.string(), parent_id: z.string().nullable(), status: z.literal("completed"), manifest_key: z.string(),
  objects: z.number().int(), bytes: z.number().int(), copied_objects: z.number().int(), copied_bytes: z.number().int(),
  job_id: z.string().nullable(), created_at: z.string(), finished_at: z.string(), duration_ms: z.number().int(),
});
export const SnapshotList = z.strictObject({ snapshots: z.array(SnapshotView) });

storageRoutes.get("/backup/storage", requireRole("viewer"), async (c) => {
  const q = parseQuery(c, ListQuery);
  const answer: z.infer<typeof SnapshotList> = { snapshots: await openStorageCatalog(c.env.CATALOG).listSnapshots(q) };
  return c.json(answer);
});

/** Per configured source: its newest snapshot and whether versioning or replication protects it continuously. */
export const StorageStatusResponse = z.strictObject({
  sources: z.array(z.strictObject({
    bucket: z.string(), prefix: z.string(),
    latest_snapshot: z.strictObject({ id: z.string(), created_at: z.string(), objects: z.number().int(), bytes: z.number().int() }).nullable(),
    snapshot_age_minutes: z.number().nullable(),
    versioning: z.boolean(), replica: z.string().nullable(), replica_seconds_behind: z.number().nullable(),
    rpo_target_minutes: z.number(), rpo_met: z.boolean(),
  })),
});

storageRoutes.get("/backup/storage/status", requireRole("viewer"), async (c) => {
  const answer: z.infer<typeof StorageStatusResponse> = { sources: await storageStatus(c.env, c.get("config"), new Date()) };
  return c.json(answer);
});

storageRoutes.get("/backup/storage/:id", requireRole("viewer"), async (c) => {
  const row = await openStorageCatalog(c.env.CATALOG).getSnapshot(c.req.param("id"));
  if (!row) throw notFound("snapshot");
  const answer: z.infer<typeof SnapshotView> = row;
  return c.json(answer);
});

const RestoreOptions = {
  target_bucket: z.string().optional(),
  prefix: ObjectPrefix.default(""),
  key: ObjectKey.optional(),
  overwrite: z.boolean().default(false),
  dry_run: z.boolean().default(false),
};

export const SnapshotRestoreRequest = z.strictObject(RestoreOptions);

function restoreScope(c: Ctx, body: { target_bucket?: string; prefix: string; key?: string; overwrite: boolean; dry_run: boolean }, source: string) {
  const target_bucket = body.target_bucket ?? source;
  requireBucket(c, target_bucket, "target_bucket");
  if (body.key !== undefined && !body.key.startsWith(body.prefix)) throw badRequest(`key: "${body.key}" is not under prefix "${body.prefix}"`);
  return { target_bucket, prefix: body.prefix, ...(body.key !== undefined ? { key: body.key } : {}), overwrite: body.overwrite, dry_run: body.dry_run };
}

storageRoutes.post("/backup/storage/:id/restore", requireRole("admin"), async (c) => {
  const body = await parseJson(c, SnapshotRestoreRequest);
  const snapshot = await openStorageCatalog(c.env.CATALOG).getSnapshot(c.req.param("id"));
  if (!snapshot) throw notFound("snapshot");
  const scope = restoreScope(c, body, snapshot.bucket);
  const params = { source: { from: "snapshot", snapshot_id: snapshot.id }, ...scope };
  return c.json(await startJob(c, storageRestore, params, `${snapshot.id} -> ${scope.target_bucket}`), 202);
});

export const PointInTimeRequest = z.strictObject({ bucket: z.string(), as_of: z.iso.datetime({ offset: true }), ...RestoreOptions });

/** A bucket (or prefix, or key) as it was at a time, from the version store. */
storageRoutes.post("/storage/restore", requireRole("admin"), async (c) => {
  const body = await parseJson(c, PointInTimeRequest);
  requireBucket(c, body.bucket);
  const protection = await protectionOf(c.get("config"), openStorageCatalog(c.env.CATALOG), body.bucket);
  if (!protection.versioning) throw new AppError("versioning_off", `bucket "${body.bucket}" is not under versioning; restore from a snapshot instead`, 409);
  const scope = restoreScope(c, body, body.bucket);
  const params = { source: { from: "versions", bucket: body.bucket, as_of: new Date(body.as_of).toISOString() }, ...scope };
  return c.json(await startJob(c, storageRestore, params, `${body.bucket}@${body.as_of} -> ${scope.target_bucket}`), 202);
});

export const BucketRequest = z.strictObject({ bucket: z.string() });

const NotificationRule = z.strictObject({ queue: z.string(), command: z.string() });

/** Versioning is on; the baseline reconciliation job captures every object as it is now. */
export const VersioningResponse = z.strictObject({
  bucket: z.string(), versioning_since: z.string().nullable(), baseline_job: AcceptedResponse, notification_rule: NotificationRule,
});

storageRoutes.post("/storage/versioning", requireRole("admin"), async (c) => {
  const { bucket } = await parseJson(c, BucketRequest);
  requireBucket(c, bucket);
  if (!c.get("config").storage_versioning_enabled) throw new AppError("versioning_disabled", "STORAGE_VERSIONING_ENABLED is false", 409);
  const row = await openStorageCatalog(c.env.CATALOG).enableVersioning(bucket, new Date());
  await c.get("catalog").audit({ actor: c.get("actor"), action: "storage.versioning.enable", target: bucket, outcome: "succeeded" });
  // The first reconciliation captures every object as it is now: the baseline versions.
  const baseline = await startJob(c, storageReconcile, { bucket }, bucket);
  const answer: z.infer<typeof VersioningResponse> = { bucket, versioning_since: row.versioning_since, baseline_job: baseline, notification_rule: notificationRule(bucket) };
  return c.json(answer);
});

export const ReplicationRequest = z.strictObject({ source: z.string(), target: z.string() });
export const ReplicationStarted = z.strictObject({ source: z.string(), target: z.string(), initial_sync_job: AcceptedResponse, notification_rule: NotificationRule });
export const ReplicationStopped = z.strictObject({ source: z.string(), replica: z.string().nullable(), stopped: z.literal(true) });

/** Per versioned or replicated bucket: replication lag over the last hour, drift found by the last reconciliation. */
export const ReplicationStatusResponse = z.strictObject({
  buckets: z.array(z.strictObject({
    bucket: z.string(), versioning: z.boolean(), replica: z.string().nullable(),
    lag_seconds: z.strictObject({ p50: z.number().nullable(), p99: z.number().nullable(), max: z.number().nullable(), changes_last_hour: z.number().int() }),
    last_applied_at: z.string().nullable(), drift_objects: z.number().int().nullable(), last_reconciled_at: z.string().nullable(),
    seconds_behind: z.number(), rpo_target_seconds: z.number(),
  })),
});

storageRoutes.post("/storage/replication", requireRole("admin"), async (c) => {
  const body = await parseJson(c, ReplicationRequest);
  if (body.source === body.target) throw badRequest("target: a bucket cannot be its own replica");
  requireBucket(c, body.source, "source");
  requireBucket(c, body.target, "target");
  if (!c.get("config").storage_cross_region_replication) throw new AppError("replication_disabled", "STORAGE_CROSS_REGION_REPLICATION is false", 409);
  await openStorageCatalog(c.env.CATALOG).enableReplication(body.source, body.target, new Date());
  await c.get("catalog").audit({ actor: c.get("actor"), action: "storage.replication.enable", target: `${body.source} -> ${body.target}`, outcome: "succeeded" });
  const initial = await startJob(c, storageReconcile, { bucket: body.source }, body.source);
  const answer: z.infer<typeof ReplicationStarted> = { ...body, initial_sync_job: initial, notification_rule: notificationRule(body.source) };
  return c.json(answer);
});

storageRoutes.delete("/storage/replication/:source", requireRole("admin"), async (c) => {
  const source = c.req.param("source");
  requireBucket(c, source, "source");
  if (c.get("config").storage_replication[source]) {
    throw new AppError("configured_replication", `replication of ${source} is set by STORAGE_REPLICATION; change the configuration instead`, 409);
  }
  const stopped = await openStorageCatalog(c.env.CATALOG).disableReplication(source);
  if (!stopped) throw notFound(`replication of ${source}`);
  await c.get("catalog").audit({ actor: c.get("actor"), action: "storage.replication.stop", target: source, outcome: "succeeded" });
  const answer: z.infer<typeof ReplicationStopped> = { source, replica: stopped.replica, stopped: true };
  return c.json(answer);
});

storageRoutes.get("/storage/replication", requireRole("viewer"), async (c) => {
  const answer: z.infer<typeof ReplicationStatusResponse> = { buckets: await replicationStatus(c.env, c.get("config"), new Date()) };
  return c.json(answer);
});

storageRoutes.post("/storage/reconcile", requireRole("admin"), async (c) => {
  const { bucket } = await parseJson(c, BucketRequest);
  requireBucket(c, bucket);
  return c.json(await startJob(c, storageReconcile, { bucket }, bucket), 202);
});

export const VersionsQuery = z.strictObject({ bucket: z.string(), key: ObjectKey });

/** The captured versions of one object; captured: false when the bytes were gone before capture. */
export const VersionsResponse = z.strictObject({
  bucket: z.string(), key: z.string(),
  versions: z.array(z.strictObject({
    event_time: z.string(), action: z.enum(["put", "delete"]), etag: z.string(), size: z.number().int().nullable(), sha256: z.string().nullable(),
    captured: z.boolean(), source: z.enum(["event", "reconcile", "write-through"]),
  })),
});

/** PUT /storage/objects/...'s answer: the object written and the time its version is recorded under. */
export const ObjectWritten = z.strictObject({ bucket: z.string(), key: z.string(), etag: z.string(), size: z.number().int(), version_time: z.string() });

storageRoutes.get("/storage/versions", requireRole("viewer"), async (c) => {
  const q = parseQuery(c, VersionsQuery);
  requireBucket(c, q.bucket);
  const rows = await openStorageCatalog(c.env.CATALOG).listVersions(q.bucket, q.key);
  const answer: z.infer<typeof VersionsResponse> = {
    bucket: q.bucket, key: q.key,
    versions: rows.map((v) => ({
      event_time: v.event_time, action: v.action, etag: v.etag, size: v.size, sha256: v.sha256,
      captured: v.action === "delete" || v.sha256 !== null, source: v.source,
    })),
  };
  return c.json(answer);
});

/**
 * Write-through: stores the object and records its version in the same
 * request, so no version can be lost to a rapid overwrite (notifications can
 * only capture what is still there when they arrive).
 */
storageRoutes.put("/storage/objects/:bucket/:key{.+}", requireRole("admin"), async (c) => {
  const name = c.req.param("bucket");
  const bucket = requireBucket(c, name);
  const key = ObjectKey.safeParse(c.req.param("key"));
  if (!key.success) throw badRequest(`key: ${key.error.issues[0]?.message}`);
  const length = Number(c.req.header("content-length"));
  if (!Number.isInteger(length) || !c.req.raw.body) throw new AppError("length_required", "a Content-Length is required", 411);
  const contentType = c.req.header("content-type");
  const obj = await bucket.put(key.data, c.req.raw.body, contentType ? { httpMetadata: { contentType } } : {});
  if (!obj) throw new AppError("conflict", "the write was refused", 409);
  const event = { action: "PutObject" as const, bucket: name, object: { key: key.data, size: obj.size, eTag: obj.etag }, eventTime: obj.uploaded.toISOString() };
  if (c.req.query("capture") === "queue") {
    // Announce the write the way an R2 notification would (local development and benchmarks, where R2 sends none).
    if (!c.env.STORAGE_EVENTS) throw new AppError("no_events_queue", "the STORAGE_EVENTS producer is not bound", 503);
    await c.env.STORAGE_EVENTS.send({ account: "local", ...event });
  } else {
    await handleEvent({ env: c.env, config: c.get("config"), storage: openStorageCatalog(c.env.CATALOG), now: new Date() }, event, "write-through");
  }
  // The object routes carry the data itself: every write and read is an audit line (issue #12).
  await c.get("catalog").audit({ actor: c.get("actor"), action: "storage.object.put", target: `${name}/${key.data}`, outcome: "succeeded", detail: { size: obj.size } });
  const answer: z.infer<typeof ObjectWritten> = { bucket: name, key: key.data, etag: obj.etag, size: obj.size, version_time: event.eventTime };
  return c.json(answer, 201);
});

/** Reads one object back (admin only: it is the data itself), streamed, with its metadata as headers. */
storageRoutes.get("/storage/objects/:bucket/:key{.+}", requireRole("admin"), async (c) => {
  const bucket = requireBucket(c, c.req.param("bucket"));
  const key = ObjectKey.safeParse(c.req.param("key"));
  if (!key.success) throw badRequest(`key: ${key.error.issues[0]?.message}`);
  const obj = await bucket.get(key.data);
  if (!obj) throw notFound(`object "${key.data}"`);
  await c.get("catalog").audit({ actor: c.get("actor"), action: "storage.object.get", target: `${c.req.param("bucket")}/${key.data}`, outcome: "succeeded", detail: { size: obj.size } });
  const headers = new Headers({ etag: obj.httpEtag, "content-length": String(obj.size) });
  obj.writeHttpMetadata(headers);
  return new Response(obj.body, { headers });
});

/** The event notification rule a bucket needs so its changes reach this Worker (R2 has no S3-style versioning). */
function notificationRule(bucket: string) {
  const queue = STORAGE_EVENTS_QUEUE;
  return {
    queue,
    command: `wrangler r2 bucket notification create ${bucket} --event-type object-create --event-type object-delete --queue ${queue}`,
  };
}

