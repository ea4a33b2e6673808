// Issue #12, job tokens: a leaked or stolen job token reads only what its
// job's kind needs, lives one job lease (renewed by heartbeats), dies when the
// job's heartbeat goes stale, and a gc-scope token deletes only packs the
// Worker itself finds unreferenced.
import { env } from "cloudflare:test";
import { kinds } from "../../workers/kinds.ts";
import type { RunnerKind } from "../../workers/jobs/kind.ts";
import { beforeEach, describe, expect, it } from "vitest";
import type { JobRow } from "../../workers/catalog/schema.ts";
import { buildDispatch } from "../../workers/jobs/dispatch.ts";
import { loadConfig } from "../../workers/config.ts";
import { MIN_TOKEN_SECONDS, mintJobToken, readJobToken, type JobGrant } from "../../workers/repository/job-token.ts";
import { blobKey, manifestKey, packKey, snapshotManifestKey } from "../../workers/shared/format.ts";
import { auditRows, ctxOf, isoSecondsAgo, repoCall, resetState, seedJob, testEnv, validManifest } from "./helpers.ts";

beforeEach(resetState);

const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;

const call = (token: string, method: string, path: string, body?: string) =>
  repoCall(token, method, path, body ? { body, headers: { "content-type": "application/json" } } : {});

const tokenOf = (job: JobRow, scope: JobGrant["scope"], expires = inAnHour()) =>
  mintJobToken(env.JOB_TOKEN_SECRET, { job_id: job.id, scope, backup_id: job.backup_id ?? "-", expires });

const RESTORED = "db-astrid-20261101T020000Z-aaaaaa";
const OTHER_ARCHIVE = "db-astrid-20261102T020000Z-bbbbbb";
const running = (kind: JobRow["kind"], backup_id: string | null, p: Partial<JobRow> = {}) =>
  seedJob({ kind, status: "running", attempts: 1, backup_id, started_at: isoSecondsAgo(20), heartbeat_at: isoSecondsAgo(1), params: {}, ...p });

describe("job tokens read only what their kind needs", () => {
  it("a restore token cannot read settings, tmp, storage snapshots or another archive; it can read its packs and manifests", async () => {
    const pack = packKey("packs/", "ab".repeat(32));
    const secretish = {
      settings: "settings/storage/lifecycle/astrid-data.json",
      tmp: "tmp/upload-1",
      blob: blobKey("cd".repeat(32)),
      snapshot: snapshotManifestKey("st-astrid-data-20261101T000000Z-abcdef"),
      archive: `archive/${OTHER_ARCHIVE}/packs/ef/${"ef".repeat(32)}`,
    };
    for (const k of [pack, ...Object.values(secretish)]) await env.BACKUPS.put(k, "bytes");
    await env.BACKUPS.put(manifestKey(RESTORED), JSON.stringify(validManifest(RESTORED)));
    const job = await running("database.restore", RESTORED);
    const token = await tokenOf(job, "read");
    for (const [what, key] of Object.entries(secretish)) {
      for (const method of ["GET", "HEAD"]) expect((await call(token, method, `/objects/${key}`)).status, `${method} ${what}`).toBe(403);
    }
    for (const prefix of ["manifests/storage/", "manifests/", "settings/", "tmp/", "storage/blobs/"]) {
      expect((await call(token, "GET", `/list?prefix=${encodeURIComponent(prefix)}`)).status, prefix).toBeGreaterThanOrEqual(400);
    }
    expect((await call(token, "GET", `/list?prefix=${encodeURIComponent(`archive/${OTHER_ARCHIVE}/`)}`)).status).toBe(403);
    expect((await call(token, "GET", `/objects/${pack}`)).status).toBe(200);
    expect((await call(token, "GET", `/objects/${manifestKey(RESTORED)}`)).status).toBe(200);
    expect((await call(token, "GET", `/list?prefix=${encodeURIComponent("manifests/database/")}`)).body.objects).toHaveLength(1);
  });
});

describe("job tokens live two leases, stale jobs are refused after one", () => {
  it("dispatch mints a token that expires after two leases (at least a minute), and each heartbeat renews it", async () => {
    const job = await running("database.verify", RESTORED, { params: JSON.stringify({ backup_id: RESTORED, depth: "quick" }) });
    const config = loadConfig(testEnv());
    const now = new Date();
    const dispatch = await buildDispatch(kinds.get(job.kind) as RunnerKind<unknown, unknown>, job, { ...ctxOf(testEnv()), now });
    const grant = await readJobToken(env.JOB_TOKEN_SECRET, dispatch.repository.token, now);
    expect(grant!.expires).toBe(Math.floor(now.getTime() / 1000) + Math.max(2 * config.job_lease_seconds, MIN_TOKEN_SECONDS));
    const lifetime = Math.max(2 * config.job_lease_seconds, MIN_TOKEN_SECONDS);
    expect(await readJobToken(env.JOB_TOKEN_SECRET, dispatch.repository.token, new Date(now.getTime() + (lifetime + 1) * 1000))).toBeUndefined();

    const beat = await call(dispatch.repository.token, "POST", `/jobs/${job.id}/progress`, JSON.stringify({ phase: "x", bytes: 0, chunks: 0 }));
    expect(beat.status).toBe(200);
    const renewed = await readJobToken(env.JOB_TOKEN_SECRET, beat.body.token, new Date());
    expect(renewed).toMatchObject({ job_id: job.id, scope: "read", backup_id: RESTORED });
    expect(renewed!.expires).toBeGreaterThanOrEqual(grant!.expires);
  });

  it("the token of a job whose heartbeat is stale is refused, even before the sweep declares it lost", async () => {
    const job = await running("database.backup", RESTORED, { heartbeat_at: isoSecondsAgo(600) });
    const token = await tokenOf(job, "write");
    const res = await call(token, "GET", `/objects/${packKey("packs/", "ab".repeat(32))}`);
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe("job_stale");
  });
});

describe("a gc token deletes only what the Worker finds unreferenced", () => {
  it("packs a manifest names survive a delete request naming them", async () => {
    const used = "ab".repeat(32);
    const unused = "cd".repeat(32);
    const m = validManifest(RESTORED, { chunks: 1 });
    m.chunks[0]!.pack = used;
    await env.BACKUPS.put(manifestKey(RESTORED), JSON.stringify(m));
    for (const p of [used, unused]) await env.BACKUPS.put(packKey("packs/", p), "pack");
    const gc = await running("repository.gc", null);
    const res = await call(await tokenOf(gc, "gc"), "POST", "/delete", JSON.stringify({ keys: [packKey("packs/", used), packKey("packs/", unused)] }));
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual({ deleted: 1, locked: [], referenced: [packKey("packs/", used)] });
    expect(await env.BACKUPS.head(packKey("packs/", used))).not.toBeNull();
    expect(await env.BACKUPS.head(packKey("packs/", unused))).toBeNull();
    expect((await auditRows()).find((a) => a.action === "repository.delete")).toMatchObject({ outcome: "denied" });
  });
});

describe("/repo/v1 is not served on the public hostname in production", () => {
  it("with the runner as a Container, public requests to /repo/v1 find nothing; the container's own path still works", async () => {
    const { app } = await import("../../workers/app.ts");
    const job = await running("database.restore", RESTORED);
    const token = await tokenOf(job, "read");
    await env.BACKUPS.put(packKey("packs/", "ab".repeat(32)), "bytes");
    const path = `/objects/${packKey("packs/", "ab".repeat(32))}`;
    const production = { RUNNER: { idFromName: () => ({}), get: () => ({}) } };
    const pub = await repoCall(token, "GET", path, {}, production);
    expect(pub.status).toBe(404);
    expect(pub.body.error.code).toBe("not_found");
    // What RunnerContainer.outboundByHost does: the app itself, with the binding.
    const internal = await app.fetch(new Request(`http://repository.internal/repo/v1${path}`, { headers: { authorization: `Bearer ${token}` } }), testEnv(production));
    expect(internal.status).toBe(200);
    // Locally (RUNNER_URL, no container) the route is served as before.
    expect((await repoCall(token, "GET", path)).status).toBe(200);
  });
});
