// The repository endpoint the runner talks to. It serves R2 through the
// binding, so the runner needs no R2 credentials: a job-scoped token lets a
// running job read objects and, for a backup job, write its chunks and its own
// manifest, write-once. Locally this is a route of the Worker; on Cloudflare
// the runner container's requests to this host are intercepted and served
// by the same app (workers/app.ts), so chunk traffic stays inside Cloudflare.
// The job's progress and completion reports are the jobs machinery's
// (jobs/runner-routes.ts), mounted beside these behind the same token check.
import { Hono } from "hono";
import { createMiddleware } from "hono/factory";
import type { Context } from "hono";
import type { AppEnv } from "../context.ts";
import { AppError } from "../shared/errors.ts";
import { ARCHIVE_PREFIX, CHUNK_MANIFEST_PREFIXES, CONTINUOUS_MANIFEST_PREFIX, isRepositoryKey, manifestKeyFor, SHARED_PACK_PREFIX } from "../shared/format.ts";
import { parseJson, parseQuery } from "../http.ts";
import { z } from "zod";
import { readJobToken, type JobGrant } from "./job-token.ts";
import type { JobRow } from "../catalog/schema.ts";
import { isChunkManifestKey, macMetadata, readAuthenticated } from "./manifest-mac.ts";
import { referencedPackKeys } from "./damage.ts";

/** Manifests are read into memory to be MACed: a 1 GB database's is ~5 MB. */
const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;

export type RepoEnv = AppEnv & { Variables: { grant: JobGrant; job: JobRow } };

/** Which backup-bucket objects are inside a Bucket Lock window (storage/lock-guard.ts); null when none are. */
export type LockGuardSource = (env: RepoEnv["Bindings"], config: RepoEnv["Variables"]["config"], now: Date) => Promise<((key: string, uploaded: Date) => boolean) | null>;

/** Every /repo/v1 request carries a job token; the job it names must be running and within its lease. */
export const requireJobToken = createMiddleware<RepoEnv>(async (c, next) => {
  const match = /^Bearer\s+(\S+)$/i.exec(c.req.header("authorization") ?? "");
  const grant = match ? await readJobToken(c.env.JOB_TOKEN_SECRET, match[1]!, new Date()) : undefined;
  if (!grant) throw new AppError("unauthorized", "missing, invalid or expired job token", 401);
  const job = await c.get("catalog").getJob(grant.job_id);
  // A token dies with its job: a finished or lost job can no longer touch the repository.
  if (!job || job.status !== "running") throw new AppError("job_not_running", `job ${grant.job_id} is not running`, 403);
  // Nor does it outlive the job's lease: once heartbeats stop, the job is as good as lost
  // (GC may start), so its token must not write or read any more.
  if (leaseExpired(job, c.get("config").job_lease_seconds, new Date())) {
    throw new AppError("job_stale", `job ${grant.job_id} has not sent a heartbeat within its lease`, 403);
  }
  c.set("grant", grant);
  c.set("job", job);
  await next();
});

function leaseExpired(job: JobRow, leaseSeconds: number, now: Date): boolean {
  const last = job.heartbeat_at ?? job.started_at;
  return last !== null && Date.parse(last) + leaseSeconds * 1000 < now.getTime();
}

/**
 * What a job may read: database and ML jobs their chunk stores and the
 * database and ML manifests; never settings/, tmp/, the storage snapshots
 * (manifests/storage/, storage/blobs/: plaintext copies of protected
 * buckets) or another archive's packs. GC additionally every archive.
 */
function mayRead(grant: JobGrant, key: string): boolean {
  if (key.startsWith(SHARED_PACK_PREFIX) || CHUNK_MANIFEST_PREFIXES.some((p) => key.startsWith(p))) return true;
  // GC sweeps every archive; a drill restores archives of several backups; any other job reads only its own.
  return key.startsWith(grant.scope === "gc" || grant.scope === "drill" ? ARCHIVE_PREFIX : `${ARCHIVE_PREFIX}${grant.backup_id}/`);
}

function objectKey(path: string): string {
  const key = decodeURIComponent(path.replace(/^.*?\/objects\//, ""));
  if (!isRepositoryKey(key)) throw new AppError("invalid_key", "not a repository key", 400);
  return key;
}

/**
 * A backup job may write shared packs, its own archive packs, its own
 * manifest and the segments of the change stream its backup is the base of
 * (only a continuous.stream job's report gets a segment listed).
 */
function mayWrite(grant: JobGrant, key: string): boolean {
  if (grant.scope !== "write") return false;
  return key.startsWith(SHARED_PACK_PREFIX) || key.startsWith(`${ARCHIVE_PREFIX}${grant.backup_id}/`) || key === manifestKeyFor(grant.backup_id)
    || key.startsWith(`${CONTINUOUS_MANIFEST_PREFIX}${grant.backup_id}/`);
}

function describe(object: R2Object): Record<string, string> {
  const sha = object.checksums.sha256;
  return {
    "x-stored-size": String(object.size),
    ...(sha ? { "x-stored-sha256": [...new Uint8Array(sha)].map((b) => b.toString(16).padStart(2, "0")).join("") } : {}),
    etag: object.httpEtag,
  };
}

const LIST_PREFIXES = [SHARED_PACK_PREFIX, ARCHIVE_PREFIX, ...CHUNK_MANIFEST_PREFIXES];
const ListQuery = z.strictObject({ prefix: z.string(), cursor: z.string().optional() });

/** Reads outside what the job's kind needs are refused (403), before R2 is asked. */
function readableKey(c: Context<RepoEnv>): string {
  const key = objectKey(c.req.path);
  const grant = c.get("grant");
  if (!mayRead(grant, key)) throw new AppError("forbidden", `job ${grant.job_id} may not read ${key}`, 403);
  return key;
}

/**
 * A manifest is served only after its MAC is checked (manifest-mac.ts): every
 * verify, restore, incremental parent and GC reads manifests through here, so
 * a forged or overwritten one stops the job instead of feeding pg_restore.
 * A manifest from before MACs is served, flagged `x-manifest-auth:
 * unauthenticated`, and a restore or verify reading one is audited.
 */
async function serveManifest(c: Context<RepoEnv>, key: string, ranged: boolean) {
  if (ranged) throw new AppError("invalid_range", "manifests are read whole", 400);
  const read = await readAuthenticated(c.env, key);
  if (!read) throw new AppError("not_found", "no such object", 404);
  const grant = c.get("grant");
  if (read.auth !== "authenticated" && (read.auth === "forged" || grant.scope === "read" || grant.scope === "drill")) {
    await c.get("catalog").audit({
      actor: "runner", action: `repository.manifest_${read.auth}`, target: key, outcome: read.auth === "forged" ? "denied" : "succeeded",
      detail: { job_id: grant.job_id },
    });
  }
  if (read.auth === "forged") throw new AppError("manifest_not_authentic", `${key} does not carry a valid MAC: refusing to use it`, 409);
  return c.body(read.bytes, 200, { ...describe(read.object), "content-length": String(read.bytes.byteLength), "x-manifest-auth": read.auth });
}

function parseRange(header: string | undefined): { offset: number; length: number } | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d+)-(\d+)$/.exec(header);
  if (!m || Number(m[2]) < Number(m[1])) throw new AppError("invalid_range", "Range must be bytes=<first>-<last>", 400);
  return { offset: Number(m[1]), length: Number(m[2]) - Number(m[1]) + 1 };
}

/** A capability's extra check of a write its job's grant allows (e.g. a segment manifest only from the stream's holder); throws to refuse. */
export type WriteFence = (env: RepoEnv["Bindings"], grant: JobGrant, key: string) => Promise<void>;

/** The repository's objects, for jobs: list, read (ranges), write once, and (GC only) delete unreferenced packs. */
export function repositoryRoutes(locks: LockGuardSource, fence: WriteFence = async () => {}) {
  const routes = new Hono<RepoEnv>();
  /** One page (up to 1,000) of objects under a repository prefix, with sizes and upload times. */
  routes.get("/list", async (c) => {
    const q = parseQuery(c, ListQuery);
    if (!LIST_PREFIXES.some((p) => q.prefix.startsWith(p))) throw new AppError("invalid_prefix", `list under ${LIST_PREFIXES.join(", ")} only`, 400);
    const grant = c.get("grant");
    // "archive/" as a whole is GC's (and a drill's); any other job lists only its own archive.
    if (q.prefix.startsWith(ARCHIVE_PREFIX) && !mayRead(grant, q.prefix.length > ARCHIVE_PREFIX.length ? q.prefix : ARCHIVE_PREFIX)) {
      throw new AppError("forbidden", `job ${grant.job_id} may not list ${q.prefix}`, 403);
    }
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
    const bad = keys.find((k) => !isRepositoryKey(k) || !(k.startsWith(SHARED_PACK_PREFIX) || k.startsWith(ARCHIVE_PREFIX)));
    if (bad !== undefined) throw new AppError("invalid_key", "only pack and archive objects can be deleted", 400);
    // The Worker checks for itself that no manifest references a pack: the token holder's word is not enough.
    const referencedSet = await referencedPackKeys(c.env.BACKUPS);
    const referenced = keys.filter((k) => referencedSet.has(k));
    // Objects inside a Bucket Lock window are skipped (R2 would refuse them): the answer names them.
    const guard = await locks(c.env, c.get("config"), new Date());
    const locked: string[] = [];
    for (const key of guard ? keys : []) {
      const head = await c.env.BACKUPS.head(key);
      if (head && guard!(key, head.uploaded)) locked.push(key);
    }
    const doomed = keys.filter((k) => !locked.includes(k) && !referencedSet.has(k));
    if (doomed.length) await c.env.BACKUPS.delete(doomed);
    if (referenced.length) {
      await c.get("catalog").audit({ actor: "runner", action: "repository.delete", outcome: "denied", detail: { job_id: grant.job_id, referenced: referenced.slice(0, 20) } });
    }
    return c.json({ deleted: doomed.length, locked, ...(referenced.length ? { referenced } : {}) });
  });


  routes.on("HEAD", "/objects/*", async (c) => {
    const object = await c.env.BACKUPS.head(readableKey(c));
    if (!object) return c.body(null, 404);
    return c.body(null, 200, describe(object));
  });

  /** Whole objects, or one byte range (`Range: bytes=a-b`): readers fetch runs of chunks out of packs. */
  routes.get("/objects/*", async (c) => {
    const key = readableKey(c);
    const range = parseRange(c.req.header("range"));
    if (isChunkManifestKey(key)) return serveManifest(c, key, range !== undefined);
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
    await fence(c.env, grant, key);
    const sha256 = c.req.header("x-content-sha256");
    const length = Number(c.req.header("content-length"));
    if (!sha256 || !/^[0-9a-f]{64}$/.test(sha256)) throw new AppError("checksum_required", "x-content-sha256 is required", 400);
    if (!Number.isInteger(length) || length <= 0 || !c.req.raw.body) throw new AppError("length_required", "a body with content-length is required", 411);
    // A manifest is read whole (it is small) so that the Worker can add its MAC; packs stream through.
    const manifest = isChunkManifestKey(key);
    if (manifest && length > MAX_MANIFEST_BYTES) throw new AppError("too_large", `a manifest may have at most ${MAX_MANIFEST_BYTES} bytes`, 413);
    const body = manifest ? await c.req.arrayBuffer() : c.req.raw.body;
    const customMetadata = manifest ? await macMetadata(c.env, body as ArrayBuffer) : {};
    // R2 checks the SHA-256 itself and refuses the write if the bytes differ.
    let stored: R2Object | null;
    try {
      // Archives are written once and read rarely: Infrequent Access halves their storage price.
      const storageClass = key.startsWith(ARCHIVE_PREFIX) ? "InfrequentAccess" : "Standard";
      // Write-once, atomically: R2 stores the object only if the key is free (If-None-Match: *),
      // so of two writers racing for one key exactly one wins and nothing is ever replaced.
      stored = await c.env.BACKUPS.put(key, body, { sha256, storageClass, customMetadata, onlyIf: new Headers({ "if-none-match": "*" }) });
    } catch (e) {
      if (/SHA-256|checksum/i.test((e as Error).message)) throw new AppError("checksum_mismatch", "the body does not match x-content-sha256; nothing was stored", 400);
      throw e;
    }
    if (!stored) {
      const existing = await c.env.BACKUPS.head(key);
      if (!existing) throw new AppError("conflict", "the object was deleted while being written; retry", 409);
      return c.body(null, 200, { ...describe(existing), "x-existed": "1" });
    }
    return c.body(null, 201, describe(stored));
  });
  return routes;
}
