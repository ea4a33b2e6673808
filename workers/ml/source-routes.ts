// Access to protected R2 buckets for the runner (which holds no R2
// credentials), for exactly two things: a training-data backup reading the R2
// prefixes its dataset names, and a training-data restore writing (and reading
// back) under the one bucket and prefix its request named. Anything else is 403.
import { Hono, type Context } from "hono";
import { z } from "zod";
import { AppError } from "../shared/errors.ts";
import { parseQuery } from "../http.ts";
import { ObjectKey } from "../shared/protocol.ts";
import { TrainingDataParams, TrainingDataRestoreParams } from "./protocol.ts";
import { storageBucket, unknownBucket } from "../storage/buckets.ts";
import type { RepoEnv } from "../repository/routes.ts";

export const sourceRoutes = new Hono<RepoEnv>();

/** The bucket binding if the job may touch `path` of it: a backup reads its dataset's prefixes, a restore its target prefix. */
async function readableSource(c: Context<RepoEnv>, bucket: string, path: string, mode: "read" | "write" = "read"): Promise<R2Bucket> {
  const job = await c.get("catalog").getJob(c.get("grant").job_id);
  const config = c.get("config");
  const params = job ? JSON.parse(job.params) : {};
  let prefixes: { bucket: string; prefix: string }[] = [];
  if (job?.kind === "training_data.backup" && mode === "read") {
    const p = TrainingDataParams.safeParse(params);
    prefixes = p.success ? (config.ml_datasets[p.data.dataset]?.r2_prefixes ?? []) : [];
  } else if (job?.kind === "training_data.restore") {
    const p = TrainingDataRestoreParams.safeParse(params);
    prefixes = p.success && p.data.bucket ? [{ bucket: p.data.bucket, prefix: p.data.prefix ?? "" }] : [];
  }
  if (!prefixes.some((p) => p.bucket === bucket && path.startsWith(p.prefix))) {
    throw new AppError("forbidden", `job ${c.get("grant").job_id} may not ${mode} ${bucket}/${path}`, 403);
  }
  const binding = storageBucket(c.env, config, bucket);
  if (!binding) throw unknownBucket(bucket);
  return binding;
}

const ListQuery = z.strictObject({ prefix: z.string().max(1024), cursor: z.string().optional() });

sourceRoutes.get("/source/:bucket/list", async (c) => {
  const q = parseQuery(c, ListQuery);
  const bucket = await readableSource(c, c.req.param("bucket"), q.prefix);
  const page = await bucket.list({ prefix: q.prefix, limit: 1000, ...(q.cursor ? { cursor: q.cursor } : {}) });
  return c.json({
    objects: page.objects.map((o) => ({ key: o.key, size: o.size, etag: o.etag, uploaded: o.uploaded.toISOString() })),
    ...(page.truncated ? { cursor: page.cursor } : {}),
  });
});

sourceRoutes.get("/source/:bucket/objects/:key{.+}", async (c) => {
  const key = c.req.param("key");
  const bucket = await readableSource(c, c.req.param("bucket"), key);
  const etag = c.req.query("etag");
  const object = await bucket.get(key, etag ? { onlyIf: { etagMatches: etag } } : {});
  if (!object) throw new AppError("not_found", `no object ${key}`, 404);
  if (!("body" in object)) throw new AppError("object_changed", `${key} changed since it was listed`, 412);
  return c.body(object.body, 200, { "content-length": String(object.size), etag: object.httpEtag });
});

/** A training-data restore writing one object; the body streams straight into R2 (the runner sends a content-length). */
sourceRoutes.put("/source/:bucket/objects/:key{.+}", async (c) => {
  const key = ObjectKey.safeParse(c.req.param("key"));
  if (!key.success) throw new AppError("invalid_key", "not an object key", 400);
  const bucket = await readableSource(c, c.req.param("bucket"), key.data, "write");
  if (!c.req.raw.body) throw new AppError("invalid_request", "no body", 400);
  const object = await bucket.put(key.data, c.req.raw.body);
  if (!object) throw new AppError("object_changed", `${key.data} was not written`, 412);
  return c.json({ key: key.data, size: object.size, etag: object.etag }, 201);
});
