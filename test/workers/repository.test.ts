// The runner's repository endpoint under /repo/v1 (workers/repository/routes.ts):
// job-scoped tokens, write-once objects with checksums, progress heartbeats,
// and job completion, where a backup is listed only if its manifest in R2
// agrees with the runner's report.
import { env, SELF } from "cloudflare:test";
import { kinds } from "../../workers/kinds.ts";
import { beforeEach, describe, expect, it } from "vitest";
import type { JobRow } from "../../workers/catalog/schema.ts";
import { mintJobToken, type JobGrant } from "../../workers/repository/job-token.ts";
import { DatabaseManifest, manifestKey } from "../../workers/shared/format.ts";
import type { JobCompletion } from "../../workers/shared/protocol.ts";
import {
  ADMIN, allBackupRows, api, auditRows, backupIdFor, backupResultFor, catalog, isoSecondsAgo, jobRow, resetState,
  seedBackup, seedBackupJob, seedJob, sha256Hex, validManifest,
} from "./helpers.ts";

beforeEach(resetState);

// ---- helpers ----

interface RepoResponse {
  status: number;
  text: string;
  body: any;
  headers: Headers;
}

/** A request to the repository endpoint, through the Worker as the runner would make it. */
async function repo(method: string, path: string, token: string | null, init: { body?: string | Uint8Array; headers?: Record<string, string> } = {}): Promise<RepoResponse> {
  const headers: Record<string, string> = { ...init.headers };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const res = await SELF.fetch(`https://backup.test/repo/v1${path}`, { method, headers, ...(init.body !== undefined ? { body: init.body } : {}) });
  const text = await res.text();
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  return { status: res.status, text, body, headers: res.headers };
}

/** PUTs `data` with its real SHA-256 unless another checksum (or none: null) is given. */
async function put(token: string, key: string, data: string | Uint8Array, sha256?: string | null): Promise<RepoResponse> {
  const checksum = sha256 === undefined ? await sha256Hex(data) : sha256;
  return repo("PUT", `/objects/${key}`, token, { body: data, headers: checksum === null ? {} : { "x-content-sha256": checksum } });
}

const report = (token: string, jobId: string, completion: JobCompletion) =>
  repo("POST", `/jobs/${jobId}/complete`, token, { body: JSON.stringify(completion), headers: { "content-type": "application/json" } });

const inOneDay = () => Math.floor(Date.now() / 1000) + 86_400;

function tokenFor(job: JobRow, scope: JobGrant["scope"] = "write", grant: Partial<JobGrant> = {}, secret = env.JOB_TOKEN_SECRET) {
  return mintJobToken(secret, { job_id: job.id, scope, backup_id: job.backup_id!, expires: inOneDay(), ...grant });
}

/** A backup job the runner is working on right now. */
const runningBackupJob = (p: Partial<JobRow> = {}) =>
  seedBackupJob({ status: "running", attempts: 1, started_at: isoSecondsAgo(10), heartbeat_at: isoSecondsAgo(5), ...p });

const chunkKeyOf = (hex: string) => `packs/${hex.slice(0, 2)}/${hex}`;
const CHUNK_A = chunkKeyOf("ab".repeat(32));
const CHUNK_B = chunkKeyOf("cd".repeat(32));
const objectText = async (key: string) => (await env.BACKUPS.get(key))?.text();

// ---- tests ----

describe("job tokens", () => {
  it("are required: no token is 401 JSON", async () => {
    const res = await repo("GET", `/objects/${CHUNK_A}`, null);
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: { code: "unauthorized", message: expect.any(String) } });
  });

  it("must be signed with JOB_TOKEN_SECRET", async () => {
    const job = await runningBackupJob();
    const forged = await tokenFor(job, "write", {}, "some-other-secret");
    const res = await put(forged, CHUNK_A, "bytes");
    expect(res.status).toBe(401);
    expect(await env.BACKUPS.head(CHUNK_A)).toBeNull();
  });

  it("cannot be altered: a read token edited to write scope is 401", async () => {
    const job = await runningBackupJob();
    const [, mac] = (await tokenFor(job, "read")).split(".");
    const payload = btoa(JSON.stringify({ job_id: job.id, scope: "write", backup_id: job.backup_id, expires: inOneDay() })).replace(/=+$/, "");
    expect((await put(`${payload}.${mac}`, CHUNK_A, "bytes")).status).toBe(401);
    expect(await env.BACKUPS.head(CHUNK_A)).toBeNull();
  });

  it("expire", async () => {
    const job = await runningBackupJob();
    const expired = await tokenFor(job, "write", { expires: Math.floor(Date.now() / 1000) - 1 });
    expect((await repo("GET", `/objects/${CHUNK_A}`, expired)).status).toBe(401);
  });

  for (const garbage of ["garbage", "a.b", ".", "x".repeat(300), ADMIN]) {
    it(`reject a malformed token (${garbage.slice(0, 12)}…) with 401`, async () => {
      expect((await repo("GET", `/objects/${CHUNK_A}`, garbage)).status).toBe(401);
    });
  }

  for (const status of ["queued", "succeeded", "failed"] as const) {
    it(`of a ${status} job are refused with 403 job_not_running`, async () => {
      const job = await seedBackupJob({ status });
      const res = await put(await tokenFor(job), CHUNK_A, "bytes");
      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe("job_not_running");
      expect(await env.BACKUPS.head(CHUNK_A)).toBeNull();
    });
  }

  it("of a job that does not exist are refused with 403", async () => {
    const token = await mintJobToken(env.JOB_TOKEN_SECRET, { job_id: "job-ghost", scope: "write", backup_id: backupIdFor(), expires: inOneDay() });
    expect((await repo("GET", `/objects/${CHUNK_A}`, token)).status).toBe(403);
  });
});

describe("reading objects", () => {
  it("GET and HEAD serve an object with its size and SHA-256 to a read token", async () => {
    await env.BACKUPS.put(CHUNK_A, "chunk bytes", { sha256: await sha256Hex("chunk bytes") });
    const job = await seedJob({ kind: "database.verify", status: "running", heartbeat_at: isoSecondsAgo(1), backup_id: backupIdFor(), params: {} });
    const token = await tokenFor(job, "read");
    const got = await repo("GET", `/objects/${CHUNK_A}`, token);
    expect(got.status).toBe(200);
    expect(got.text).toBe("chunk bytes");
    const head = await repo("HEAD", `/objects/${CHUNK_A}`, token);
    expect(head.status).toBe(200);
    expect(head.headers.get("x-stored-size")).toBe("11");
    expect(head.headers.get("x-stored-sha256")).toBe(await sha256Hex("chunk bytes"));
  });

  it("answer 404 for a missing object", async () => {
    const token = await tokenFor(await runningBackupJob(), "read");
    expect((await repo("GET", `/objects/${CHUNK_A}`, token)).status).toBe(404);
    expect((await repo("HEAD", `/objects/${CHUNK_A}`, token)).status).toBe(404);
  });
});

describe("writing objects", () => {
  it("a read token cannot PUT", async () => {
    const job = await runningBackupJob();
    const res = await put(await tokenFor(job, "read"), CHUNK_A, "bytes");
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe("forbidden");
    expect(await env.BACKUPS.head(CHUNK_A)).toBeNull();
  });

  it("a write token can PUT shared chunks, stored with their checksum", async () => {
    const token = await tokenFor(await runningBackupJob());
    const res = await put(token, CHUNK_A, "encrypted chunk A");
    expect(res.status).toBe(201);
    expect(res.headers.get("x-stored-sha256")).toBe(await sha256Hex("encrypted chunk A"));
    expect(res.headers.get("x-stored-size")).toBe("17");
    expect(await objectText(CHUNK_A)).toBe("encrypted chunk A");
  });

  it("a write token can PUT binary data unchanged", async () => {
    const bytes = Uint8Array.from({ length: 4096 }, (_, i) => (i * 7) % 256);
    const res = await put(await tokenFor(await runningBackupJob()), CHUNK_B, bytes);
    expect(res.status).toBe(201);
    expect(new Uint8Array(await (await env.BACKUPS.get(CHUNK_B))!.arrayBuffer())).toEqual(bytes);
  });

  it("a write token can PUT its own manifest and its own archive chunks", async () => {
    const job = await runningBackupJob();
    const token = await tokenFor(job);
    expect((await put(token, manifestKey(job.backup_id!), "{}")).status).toBe(201);
    const archiveChunk = `archive/${job.backup_id}/packs/ab/${"ab".repeat(32)}`;
    expect((await put(token, archiveChunk, "archived")).status).toBe(201);
    expect(await objectText(archiveChunk)).toBe("archived");
  });

  it("a write token cannot PUT another backup's manifest or archive chunks", async () => {
    const job = await runningBackupJob();
    const other = backupIdFor();
    const token = await tokenFor(job);
    for (const key of [manifestKey(other), `archive/${other}/packs/ab/${"ab".repeat(32)}`, `manifests/database/${job.backup_id}.json.bak`]) {
      const res = await put(token, key, "{}");
      expect(res.status, key).toBe(403);
      expect(await env.BACKUPS.head(key)).toBeNull();
    }
  });

  it("a write token cannot PUT outside packs/, its archive and its manifest", async () => {
    const token = await tokenFor(await runningBackupJob());
    for (const key of ["catalog/backups.json", "manifests/storage/x.json", "index/latest"]) {
      expect((await put(token, key, "x")).status, key).toBe(403);
    }
  });

  it("objects are write-once: a second PUT leaves the first bytes", async () => {
    const token = await tokenFor(await runningBackupJob());
    expect((await put(token, CHUNK_A, "first")).status).toBe(201);
    const second = await put(token, CHUNK_A, "second, different");
    expect(second.status).toBe(200);
    expect(second.headers.get("x-existed")).toBe("1");
    expect(second.headers.get("x-stored-sha256")).toBe(await sha256Hex("first"));
    expect(await objectText(CHUNK_A)).toBe("first");
  });

  it("a manifest is write-once too", async () => {
    const job = await runningBackupJob();
    const token = await tokenFor(job);
    await put(token, manifestKey(job.backup_id!), '{"v":1}');
    await put(token, manifestKey(job.backup_id!), '{"v":2}');
    expect(await objectText(manifestKey(job.backup_id!))).toBe('{"v":1}');
  });

  it("a PUT without x-content-sha256 is 400 checksum_required", async () => {
    const res = await put(await tokenFor(await runningBackupJob()), CHUNK_A, "bytes", null);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("checksum_required");
    expect(await env.BACKUPS.head(CHUNK_A)).toBeNull();
  });

  for (const [what, sha] of [["upper-case", "AB".repeat(32)], ["short", "ab".repeat(16)], ["non-hex", "zz".repeat(32)]] as const) {
    it(`a PUT with a ${what} x-content-sha256 is 400`, async () => {
      const res = await put(await tokenFor(await runningBackupJob()), CHUNK_A, "bytes", sha);
      expect(res.status).toBe(400);
      expect(await env.BACKUPS.head(CHUNK_A)).toBeNull();
    });
  }

  it("a PUT whose bytes do not match x-content-sha256 is refused by R2 and stores nothing", async () => {
    const res = await put(await tokenFor(await runningBackupJob()), CHUNK_A, "the bytes sent", await sha256Hex("other bytes"));
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("checksum_mismatch");
    expect(await env.BACKUPS.head(CHUNK_A)).toBeNull();
  });

  it("an empty PUT is refused", async () => {
    const res = await put(await tokenFor(await runningBackupJob()), CHUNK_A, "");
    expect(res.status).toBe(411);
    expect(await env.BACKUPS.head(CHUNK_A)).toBeNull();
  });
});

describe("repository keys", () => {
  // Encoded so the URL parser does not resolve the dot segments before the Worker sees them.
  const bad: [string, string][] = [
    ["a .. segment", "chunks%2F..%2F..%2Fmanifests%2Fdatabase%2Fother.json"],
    ["a . segment", "chunks%2F.%2Fab%2Fx"],
    ["a double-encoded .. segment", "packs/%252E%252E/x"],
    ["a space", "packs/ab/a%20b"],
    ["a NUL byte", "packs/ab/a%00b"],
    ["a backslash", "packs/ab/a%5Cb"],
    ["a dollar sign", "packs/ab/$x"],
    ["non-ASCII", "packs/ab/%C3%A9"],
    ["an upper-case first segment", "Chunks/ab/x"],
    ["a single segment", "chunks"],
    ["an empty segment", "packs//x"],
    ["a trailing slash", "packs/ab/"],
  ];
  for (const [what, key] of bad) {
    it(`with ${what} are 400 invalid_key on PUT and GET`, async () => {
      const token = await tokenFor(await runningBackupJob());
      const res = await repo("PUT", `/objects/${key}`, token, { body: "x", headers: { "x-content-sha256": await sha256Hex("x") } });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("invalid_key");
      expect((await repo("GET", `/objects/${key}`, token)).status).toBe(400);
      expect((await env.BACKUPS.list()).objects).toEqual([]);
    });
  }
});

describe("progress reports", () => {
  const progress = (token: string, jobId: string, body: unknown) =>
    repo("POST", `/jobs/${jobId}/progress`, token, { body: JSON.stringify(body), headers: { "content-type": "application/json" } });

  it("record the progress and refresh the heartbeat", async () => {
    const job = await runningBackupJob({ heartbeat_at: isoSecondsAgo(100) });
    const before = Date.now();
    const res = await progress(await tokenFor(job), job.id, { phase: "dump", bytes: 1048576, chunks: 3 });
    expect(res.status).toBe(200);
    const row = await jobRow(job.id);
    expect(JSON.parse(row!.progress!)).toEqual({ phase: "dump", bytes: 1048576, chunks: 3 });
    expect(Date.parse(row!.heartbeat_at!)).toBeGreaterThanOrEqual(before - 1000);
    expect((await api("GET", `/jobs/${job.id}`)).body.progress).toEqual({ phase: "dump", bytes: 1048576, chunks: 3 });
  });

  it("keep a long job from being declared lost", async () => {
    const job = await runningBackupJob({ heartbeat_at: isoSecondsAgo(100) });
    await progress(await tokenFor(job), job.id, { phase: "upload", bytes: 1, chunks: 1 });
    // 60 s later the old heartbeat would be 160 s stale (lease 120 s); the fresh one is 60 s old.
    expect(await catalog().expireStaleJobs(new Date(Date.now() + 60_000), 120, kinds.workerKinds())).toBe(0);
    expect((await jobRow(job.id))!.status).toBe("running");
  });

  it("for another job are 403", async () => {
    const job = await runningBackupJob();
    const other = await runningBackupJob();
    const res = await progress(await tokenFor(job), other.id, { phase: "dump", bytes: 1, chunks: 0 });
    expect(res.status).toBe(403);
    expect((await jobRow(other.id))!.progress).toBeNull();
  });

  it("that do not match the schema are 400", async () => {
    const job = await runningBackupJob();
    const res = await progress(await tokenFor(job), job.id, { phase: "dump", bytes: -1, chunks: 0 });
    expect(res.status).toBe(400);
    expect((await jobRow(job.id))!.progress).toBeNull();
  });
});

describe("completing a backup job", () => {
  /** A running backup job, a write token for it and a valid manifest (not yet stored). */
  async function backupInFlight() {
    const job = await runningBackupJob();
    const token = await tokenFor(job);
    const manifest = validManifest(job.backup_id!);
    expect(DatabaseManifest.safeParse(manifest).success).toBe(true);
    return { job, token, manifest };
  }
  const storeManifest = (m: unknown, backupId: string) => env.BACKUPS.put(manifestKey(backupId), typeof m === "string" ? m : JSON.stringify(m));
  const listed = async () => (await api("GET", "/backup/database")).body.backups as any[];

  it("lists the backup once its manifest agrees with the report", async () => {
    const { job, token, manifest } = await backupInFlight();
    await storeManifest(manifest, job.backup_id!);
    const result = backupResultFor(manifest);
    const res = await report(token, job.id, { status: "succeeded", result });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: "succeeded" });

    expect(await jobRow(job.id)).toMatchObject({ status: "succeeded", backup_id: job.backup_id, error_code: null });
    const backups = await listed();
    expect(backups).toHaveLength(1);
    expect(backups[0]).toMatchObject({
      backup_id: job.backup_id, database: "astrid", type: "full", status: "completed",
      logical_bytes: result.logical_bytes, stored_bytes: result.stored_bytes, chunk_count: result.chunk_count,
      created_at: result.started_at,
    });
    const [row] = await allBackupRows();
    expect(row).toMatchObject({ job_id: job.id, manifest_key: manifestKey(job.backup_id!), sha256: result.sha256 });
    expect(await auditRows()).toEqual(expect.arrayContaining([
      expect.objectContaining({ actor: "runner", action: "database.backup.succeeded", target: job.backup_id, outcome: "succeeded" }),
      // database_verify_after_backup (default "quick") queues a verification of every new backup
      expect.objectContaining({ actor: "policy:verify_after_backup", action: "database.verify", target: job.backup_id, outcome: "accepted" }),
    ]));
    const verify = await env.CATALOG.prepare("SELECT kind, params FROM jobs WHERE kind = 'database.verify'").all<{ kind: string; params: string }>();
    expect(verify.results.map((r) => JSON.parse(r.params))).toEqual([{ backup_id: job.backup_id, depth: "quick" }]);
  });

  it("lists exactly one backup when the runner reports twice", async () => {
    const { job, token, manifest } = await backupInFlight();
    await storeManifest(manifest, job.backup_id!);
    const completion: JobCompletion = { status: "succeeded", result: backupResultFor(manifest) };
    expect((await report(token, job.id, completion)).status).toBe(200);
    const again = await report(token, job.id, completion);
    expect(again.status).toBe(403); // the job is finished: its token is dead
    expect(await listed()).toHaveLength(1);
    expect(await allBackupRows()).toHaveLength(1);
  });

  it("lists exactly one backup when two reports race", async () => {
    const { job, token, manifest } = await backupInFlight();
    await storeManifest(manifest, job.backup_id!);
    const completion: JobCompletion = { status: "succeeded", result: backupResultFor(manifest) };
    const results = await Promise.all([report(token, job.id, completion), report(token, job.id, completion), report(token, job.id, completion)]);
    expect(results.some((r) => r.status === 200)).toBe(true);
    expect(await allBackupRows()).toHaveLength(1);
    expect((await jobRow(job.id))!.status).toBe("succeeded");
  });

  it("works end to end through the endpoint: chunks and manifest PUT, then completion", async () => {
    const { job, token, manifest } = await backupInFlight();
    for (const chunk of manifest.chunks) expect((await put(token, chunkKeyOf(chunk.id), `chunk ${chunk.id}`)).status).toBe(201);
    expect((await put(token, manifestKey(job.backup_id!), JSON.stringify(manifest))).status).toBe(201);
    expect((await report(token, job.id, { status: "succeeded", result: backupResultFor(manifest) })).body).toEqual({ status: "succeeded" });
    expect((await listed()).map((b) => b.backup_id)).toEqual([job.backup_id]);
  });

  /** Reports `result` for the job and expects manifest_mismatch with nothing listed. */
  async function expectManifestMismatch(job: JobRow, token: string, result: ReturnType<typeof backupResultFor>, mention?: RegExp) {
    const res = await report(token, job.id, { status: "succeeded", result });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: "failed" });
    const row = await jobRow(job.id);
    expect(row).toMatchObject({ status: "failed", error_code: "manifest_mismatch" });
    if (mention) expect(row!.error_message).toMatch(mention);
    expect(await listed()).toEqual([]);
    expect(await allBackupRows()).toEqual([]);
    expect((await api("GET", `/jobs/${job.id}`)).body.error.code).toBe("manifest_mismatch");
  }

  it("fails with manifest_mismatch when the manifest is missing", async () => {
    const { job, token, manifest } = await backupInFlight();
    await expectManifestMismatch(job, token, backupResultFor(manifest), /missing/);
  });

  it("fails with manifest_mismatch when the manifest's checksum disagrees", async () => {
    const { job, token, manifest } = await backupInFlight();
    await storeManifest(manifest, job.backup_id!);
    await expectManifestMismatch(job, token, { ...backupResultFor(manifest), sha256: "e".repeat(64) }, /disagrees/);
  });

  it("fails with manifest_mismatch when the chunk count disagrees", async () => {
    const { job, token, manifest } = await backupInFlight();
    await storeManifest(manifest, job.backup_id!);
    await expectManifestMismatch(job, token, { ...backupResultFor(manifest), chunk_count: manifest.chunks.length + 1 }, /disagrees/);
  });

  it("fails with manifest_mismatch when the logical size disagrees", async () => {
    const { job, token, manifest } = await backupInFlight();
    await storeManifest(manifest, job.backup_id!);
    await expectManifestMismatch(job, token, { ...backupResultFor(manifest), logical_bytes: 1 }, /disagrees/);
  });

  it("fails with manifest_mismatch when the manifest does not match the schema", async () => {
    const { job, token, manifest } = await backupInFlight();
    await storeManifest({ ...manifest, format_version: 2 }, job.backup_id!);
    await expectManifestMismatch(job, token, backupResultFor(manifest), /malformed/);
  });

  it("fails with manifest_mismatch when the manifest is not JSON", async () => {
    const { job, token, manifest } = await backupInFlight();
    await storeManifest("\u0000not json at all", job.backup_id!);
    await expectManifestMismatch(job, token, backupResultFor(manifest), /malformed/);
  });

  it("fails with manifest_mismatch when the report names another backup", async () => {
    const { job, token } = await backupInFlight();
    const other = validManifest(backupIdFor());
    await storeManifest(other, other.backup_id);
    await expectManifestMismatch(job, token, backupResultFor(other), /reported backup/);
  });

  it("fails with manifest_mismatch when the report names an unexpected manifest key", async () => {
    const { job, token, manifest } = await backupInFlight();
    await storeManifest(manifest, job.backup_id!);
    await expectManifestMismatch(job, token, { ...backupResultFor(manifest), manifest_key: `packs/ab/${"ab".repeat(32)}` }, /unexpected manifest key/);
  });

  it("records the runner's error when the runner reports failure, listing nothing", async () => {
    const { job, token } = await backupInFlight();
    const res = await report(token, job.id, { status: "failed", error: { code: "pg_dump_failed", message: "pg_dump exited with 1" } });
    expect(res.body).toEqual({ status: "failed" });
    expect(await jobRow(job.id)).toMatchObject({ status: "failed", error_code: "pg_dump_failed", error_message: "pg_dump exited with 1" });
    expect(await allBackupRows()).toEqual([]);
  });

  it("refuses a late report for a job already declared lost, listing nothing", async () => {
    const { job, token, manifest } = await backupInFlight();
    await storeManifest(manifest, job.backup_id!);
    await catalog().expireStaleJobs(new Date(Date.now() + 3_600_000), 120, kinds.workerKinds());
    const res = await report(token, job.id, { status: "succeeded", result: backupResultFor(manifest) });
    expect(res.status).toBe(403);
    expect(await jobRow(job.id)).toMatchObject({ status: "failed", error_code: "runner_lost" });
    expect(await allBackupRows()).toEqual([]);
  });

  it("refuses a report for another job with 403", async () => {
    const { token } = await backupInFlight();
    const other = await runningBackupJob();
    const m = validManifest(other.backup_id!);
    await storeManifest(m, other.backup_id!);
    expect((await report(token, other.id, { status: "succeeded", result: backupResultFor(m) })).status).toBe(403);
    expect((await jobRow(other.id))!.status).toBe("running");
  });

  it("refuses a report that does not match the schema with 400", async () => {
    const { job, token } = await backupInFlight();
    const res = await repo("POST", `/jobs/${job.id}/complete`, token, { body: JSON.stringify({ status: "done" }), headers: { "content-type": "application/json" } });
    expect(res.status).toBe(400);
    expect((await jobRow(job.id))!.status).toBe("running");
  });
});

describe("completing verify and restore jobs", () => {
  const BACKUP_ID = "db-astrid-20261101T020000Z-abcdef";
  const runningJobFor = (kind: "database.verify" | "database.restore") =>
    seedJob({
      kind, status: "running", attempts: 1, backup_id: BACKUP_ID, heartbeat_at: isoSecondsAgo(1),
      params: kind === "database.verify" ? { backup_id: BACKUP_ID, depth: "quick" } : { backup_id: BACKUP_ID, target_label: "astrid_restore", target_database: "astrid", replace: false },
    });

  beforeEach(() => seedBackup({ id: BACKUP_ID, created_at: "2026-11-01T02:00:00.000Z" }));

  it("a passed verify marks the backup verified", async () => {
    const job = await runningJobFor("database.verify");
    const res = await report(await tokenFor(job, "read"), job.id, {
      status: "succeeded", result: { kind: "database.verify", backup_id: BACKUP_ID, depth: "full", ok: true, checked_chunks: 3, problems: [], duration_ms: 10 },
    });
    expect(res.body).toEqual({ status: "succeeded" });
    const [backup] = (await api("GET", "/backup/database")).body.backups;
    expect(backup).toMatchObject({ status: "completed", verify_status: "passed", verify_depth: "full", verified_at: expect.any(String) });
  });

  it("a verify that found damage marks the backup corrupt, and a restore of it is then refused", async () => {
    const job = await runningJobFor("database.verify");
    const problems = [`chunk ${"ab".repeat(32)}: stored SHA-256 differs`];
    await report(await tokenFor(job, "read"), job.id, {
      status: "failed", error: { code: "integrity_error", message: "1 chunk damaged" },
      result: { kind: "database.verify", backup_id: BACKUP_ID, depth: "quick", ok: false, checked_chunks: 3, problems, duration_ms: 10 },
    });
    expect(await jobRow(job.id)).toMatchObject({ status: "failed", error_code: "integrity_error" });
    const [backup] = (await api("GET", "/backup/database")).body.backups;
    expect(backup).toMatchObject({ status: "corrupt", verify_status: "failed", verify_detail: problems[0] });
    expect((await api("POST", `/backups/${BACKUP_ID}/restore`, { body: { target: "astrid" } })).status).toBe(409);
  });

  it("a finished restore records its duration on the backup", async () => {
    const job = await runningJobFor("database.restore");
    await report(await tokenFor(job, "read"), job.id, {
      status: "succeeded", result: { kind: "database.restore", backup_id: BACKUP_ID, target_database: "astrid_restore", bytes: 100, duration_ms: 4321.4 },
    });
    expect(await jobRow(job.id)).toMatchObject({ status: "succeeded" });
    expect((await api("GET", `/backups/${BACKUP_ID}`)).body.last_restore_ms).toBe(4321);
  });
});
