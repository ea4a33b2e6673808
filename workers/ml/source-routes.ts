// Read access to protected R2 buckets for the runner, for exactly one thing:
// a training-data job reading the R2 prefixes its dataset names (the runner
// holds no R2 credentials). Anything outside those prefixes is 403. Mounted
// under /repo/v1 behind the job-token check.
import { Hono, type Context } from "hono";
import { z } from "zod";
import { AppError } from "../shared/errors.ts";
import { parseQuery } from "../http.ts";
import { TrainingDataParams } from "./protocol.ts";
import { storageBucket, unknownBucket } from "../storage/buckets.ts";
import type { RepoEnv } from "../repository/routes.ts";

export const sourceRoutes = new Hono<RepoEnv>();

/** The bucket binding if the job's dataset names a prefix of this bucket that covers `path`. */
async function readableSource(c: Context<RepoEnv>, bucket: string, path: string): Promise<R2Bucket> {
  const job = await c.get("catalog").getJob(c.get("grant").job_id);
  const config = c.get("config");
  const params = job?.kind === "training_data.backup" ? TrainingDataParams.safeParse(JSON.parse(job.params)) : undefined;
  const prefixes = params?.success ? (config.ml_datasets[params.data.dataset]?.r2_prefixes ?? []) : [];
  if (!prefixes.some((p) => p.bucket === bucket && path.startsWith(p.prefix))) {
    throw new AppError("forbidden", `job ${c.get("grant").job_id} may not read ${bucket}/${path}`, 403);
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
