// The repository endpoint the runner talks to. It serves R2 through the
// binding, so the runner needs no R2 credentials: a job-scoped token lets a
// running job read objects and, for a backup job, write its chunks and its own
// manifest, write-once. Locally this is a route of the Worker; on Cloudflare
// the runner container's requests to this host are intercepted and served
// by the same handler (workers/index.ts), so chunk traffic stays inside Cloudflare.
import { Hono } from "hono";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../context.ts";
import { AppError } from "../shared/errors.ts";
import { isRepositoryKey, manifestKeyFor } from "../shared/format.ts";
import { parseJson, parseQuery } from "../http.ts";
import { z } from "zod";
import { readJobToken, type JobGrant } from "./job-token.ts";

export type RepoEnv = AppEnv & { Variables: { grant: JobGrant } };

/** Which backup-bucket objects are inside a Bucket Lock window (storage/lock-guard.ts); null when none are. */
export type LockGuardSource = (env: RepoEnv["Bindings"], config: RepoEnv["Variables"]["config"], now: Date) => Promise<((key: string, uploaded: Date) => boolean) | null>;

/** Every /repo/v1 request carries a job token; the job it names must be running. */
export const requireJobToken = createMiddleware<RepoEnv>(async (c, next) => {
  const match = /^Bearer\s+(\S+)$/i.exec(c.req.header("authorization") ?? "");
  const grant = match ? await readJobToken(c.env.JOB_TOKEN_SECRET, match[1]!, new Date()) : undefined;
  if (!grant) throw new AppError("unauthorized", "missing, invalid or expired job token", 401);
  const job = await c.get("catalog").getJob(grant.job_id);
  // A token dies with its job: a finished or lost job can no longer touch the repository.
  if (!job || job.status !== "running") throw new AppError("job_not_running", `job ${grant.job_id} is not running`, 403);
  c.set("grant", grant);
  await next();
});


function objectKey(path: string): string {
  const key = decodeURIComponent(path.replace(/^.*?\/objects\//, ""));
  if (!isRepositoryKey(key)) throw new AppError("invalid_key", "not a repository key", 400);
  return key;
}

/** A backup job may write shared packs, its own archive packs, and its own manifest. */
function mayWrite(grant: JobGrant, key: string): boolean {
  if (grant.scope !== "write") return false;
  return key.startsWith("packs/") || key.startsWith(`archive/${grant.backup_id}/`) || key === manifestKeyFor(grant.backup_id);
}

function describe(object: R2Object): Record<string, string> {
  const sha = object.checksums.sha256;
  return {
    "x-stored-size": String(object.size),
    ...(sha ? { "x-stored-sha256": [...new Uint8Array(sha)].map((b) => b.toString(16).padStart(2, "0")).join("") } : {}),
    etag: object.httpEtag,
  };
}

const LIST_PREFIXES = ["packs/", "archive/", "manifests/"];
const ListQuery = z.strictObject({ prefix: z.string(), cursor: z.string().optional() });

function parseRange(header: string | undefined): { offset: number; length: number } | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d+)-(\d+)$/.exec(header);
  if (!m || Number(m[2]) < Number(m[1])) throw new AppError("invalid_range", "Range must be bytes=<first>-<last>", 400);
  return { offset: Number(m[1]), length: Number(m[2]) - Number(m[1]) + 1 };
}

/** The repository's objects, for jobs: list, read (ranges), write once, and (GC only) delete. */
export function repositoryRoutes(locks: LockGuardSource) {
  const routes = new Hono<RepoEnv>();
  /** One page (up to 1,000) of objects under a repository prefix, with sizes and upload times. */
  routes.get("/list", async (c) => {
    const q = parseQuery(c, ListQuery);
    if (!LIST_PREFIXES.some((p) => q.prefix.startsWith(p))) throw new AppError("invalid_prefix", `list under ${LIST_PREFIXES.join(", ")} only`, 400);
    const page = await c.env.BACKUPS.list({ prefix: q.prefix, limit: 1000, ...(q.cursor ? { cursor: q.cursor } : {}) });
    return c.json({
      objects: page.objects.map((o) => ({ key: o.key, size: o.size, uploaded: o.uploaded.toISOString() })),
      ...(page.truncated ? { cursor: page.cursor } : {}),
    });
  });

  const DeleteRequest = z.strictObject({ keys: z.array(z.string()).min(1).max(1000) });

  /** Garbage collection only: pack and archive objects, never manifests (retention owns those). */
  routes.post("/delete", async (c) => {
    const grant = c.get("grant");
    if (grant.scope !== "gc") throw new AppError("forbidden", `job ${grant.job_id} may not delete`, 403);
    const { keys } = await parseJson(c, DeleteRequest);
    const bad = keys.find((k) => !isRepositoryKey(k) || !(k.startsWith("packs/") || k.startsWith("archive/")));
    if (bad !== undefined) throw new AppError("invalid_key", "only pack and archive objects can be deleted", 400);
    // Objects inside a Bucket Lock window are skipped (R2 would refuse them): the answer names them.
    const guard = await locks(c.env, c.get("config"), new Date());
    const locked: string[] = [];
    for (const key of guard ? keys : []) {
      const head = await c.env.BACKUPS.head(key);
      if (head && guard!(key, head.uploaded)) locked.push(key);
    }
    const doomed = keys.filter((k) => !locked.includes(k));
    if (doomed.length) await c.env.BACKUPS.delete(doomed);
    return c.json({ deleted: doomed.length, locked });
  });

  routes.on("HEAD", "/objects/*", async (c) => {
    const object = await c.env.BACKUPS.head(objectKey(c.req.path));
    if (!object) return c.body(null, 404);
    return c.body(null, 200, describe(object));
  });

  /** Whole objects, or one byte range (`Range: bytes=a-b`): readers fetch runs of chunks out of packs. */
  routes.get("/objects/*", async (c) => {
    const key = objectKey(c.req.path);
    const range = parseRange(c.req.header("range"));
    const object = await c.env.BACKUPS.get(key, range ? { range } : {});
    if (!object) throw new AppError("not_found", "no such object", 404);
    if (!range) return c.body(object.body, 200, { ...describe(object), "content-length": String(object.size) });
    if (range.offset + range.length > object.size) throw new AppError("range_not_satisfiable", `${key} has ${object.size} bytes`, 416);
    return c.body(object.body, 206, {
      ...describe(object), "content-length": String(range.length),
      "content-range": `bytes ${range.offset}-${range.offset + range.length - 1}/${object.size}`,
    });
  });

  routes.put("/objects/*", async (c) => {
    const key = objectKey(c.req.path);
    const grant = c.get("grant");
    if (!mayWrite(grant, key)) throw new AppError("forbidden", `job ${grant.job_id} may not write ${key}`, 403);
    const sha256 = c.req.header("x-content-sha256");
    const length = Number(c.req.header("content-length"));
    if (!sha256 || !/^[0-9a-f]{64}$/.test(sha256)) throw new AppError("checksum_required", "x-content-sha256 is required", 400);
    if (!Number.isInteger(length) || length <= 0 || !c.req.raw.body) throw new AppError("length_required", "a body with content-length is required", 411);
    // Write-once: chunks are content-addressed and manifests are final, so an existing object is never replaced.
    const existing = await c.env.BACKUPS.head(key);
    if (existing) return c.body(null, 200, { ...describe(existing), "x-existed": "1" });
    // R2 checks the SHA-256 itself and refuses the write if the bytes differ.
    let stored: R2Object | null;
    try {
      // Archives are written once and read rarely: Infrequent Access halves their storage price.
      const storageClass = key.startsWith("archive/") ? "InfrequentAccess" : "Standard";
      stored = await c.env.BACKUPS.put(key, c.req.raw.body, { sha256, storageClass });
    } catch (e) {
      if (/SHA-256|checksum/i.test((e as Error).message)) throw new AppError("checksum_mismatch", "the body does not match x-content-sha256; nothing was stored", 400);
      throw e;
    }
    if (!stored) throw new AppError("conflict", "object appeared concurrently", 409);
    return c.body(null, 201, describe(stored));
  });
  return routes;
}
