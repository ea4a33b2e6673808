// Issue #12, "write access to R2 must not forge a backup": the attacker can
// write to the backup bucket directly (a leaked R2 credential) or holds a
// backup job's token, and plants or overwrites manifests. Manifests carry a
// MAC the Worker adds when the runner's write arrives at /repo/v1, keyed by
// MANIFEST_MAC_KEY, which no runner receives; the Worker checks it at
// completion, whenever a job reads a manifest (restore, verify, an
// incremental's parent, GC) and at catalog rebuild. Repository writes are
// write-once by R2's conditional put, so racing writers cannot replace one another.
import { createExecutionContext, createMessageBatch, env, getQueueResult } from "cloudflare:test";
import worker from "../../workers/index.ts";
import { beforeEach, describe, expect, it } from "vitest";
import type { JobRow } from "../../workers/catalog/schema.ts";
import { mintJobToken, type JobGrant } from "../../workers/repository/job-token.ts";
import { MAC_METADATA, macMetadata } from "../../workers/repository/manifest-mac.ts";
import { DatabaseManifest, manifestKey, mlManifestKey } from "../../workers/shared/format.ts";
import type { JobCompletion } from "../../workers/shared/protocol.ts";
import {
  allBackupRows, api, auditRows, backupIdFor, backupResultFor, isoDaysAgo, isoSecondsAgo, jobRow, repoCall, resetState, seedBackup, seedBackupJob, seedJob,
  sha256Hex, testEnv, validManifest,
} from "./helpers.ts";

beforeEach(resetState);

const MAC_KEY = "manifest-mac-key-held-by-the-worker-only";
const OLD_KEY = "retired-manifest-mac-key";
const macEnv = { MANIFEST_MAC_KEY: MAC_KEY };

/** What `openssl dgst -sha256 -hmac "$MANIFEST_MAC_KEY" manifest.json` prints (the break-glass check, docs/format.md). */
async function opensslHmac(key: string, bytes: Uint8Array): Promise<string> {
  const k = await crypto.subtle.importKey("raw", new TextEncoder().encode(key), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return [...new Uint8Array(await crypto.subtle.sign("HMAC", k, bytes))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function repo(job: JobRow, scope: JobGrant["scope"], method: string, path: string, init: { body?: string | Uint8Array; headers?: Record<string, string> } = {}, extraEnv: Record<string, unknown> = macEnv) {
  const token = await mintJobToken(env.JOB_TOKEN_SECRET, { job_id: job.id, scope, backup_id: job.backup_id ?? "-", expires: Math.floor(Date.now() / 1000) + 3600 });
  return repoCall(token, method, path, init, extraEnv);
}

const putObject = async (job: JobRow, key: string, data: string, extraEnv?: Record<string, unknown>) =>
  repo(job, "write", "PUT", `/objects/${key}`, {
    body: data, headers: { "x-content-sha256": await sha256Hex(data), "content-length": String(new TextEncoder().encode(data).length) },
  }, extraEnv);

const complete = (job: JobRow, scope: JobGrant["scope"], completion: JobCompletion) =>
  repo(job, scope, "POST", `/jobs/${job.id}/complete`, { body: JSON.stringify(completion), headers: { "content-type": "application/json" } });

const runningBackupJob = () => seedBackupJob({ status: "running", attempts: 1, started_at: isoSecondsAgo(10), heartbeat_at: isoSecondsAgo(1) });
const runningReadJob = (backup_id: string) =>
  seedJob({ kind: "database.restore", status: "running", attempts: 1, backup_id, started_at: isoSecondsAgo(10), heartbeat_at: isoSecondsAgo(1), params: {} });

/** A backup written the legitimate way: manifest through /repo/v1 (MACed), completion accepted. */
async function legitimateBackup() {
  const job = await runningBackupJob();
  const manifest = validManifest(job.backup_id!);
  const text = JSON.stringify(manifest);
  expect((await putObject(job, manifestKey(job.backup_id!), text)).status).toBe(201);
  const done = await complete(job, "write", { status: "succeeded", result: backupResultFor(manifest) });
  expect(done.body, done.text).toEqual({ status: "succeeded" });
  return { job, manifest, text };
}

describe("manifest MACs", () => {
  it("the Worker MACs the manifest the runner writes, as openssl dgst -hmac computes it, and the backup is listed", async () => {
    const { job, text } = await legitimateBackup();
    const stored = await env.BACKUPS.head(manifestKey(job.backup_id!));
    expect(stored!.customMetadata![MAC_METADATA]).toBe(`hmac-sha256:${await opensslHmac(MAC_KEY, new TextEncoder().encode(text))}`);
    expect((await allBackupRows()).map((b) => b.id)).toEqual([job.backup_id]);
    // A restore reads it, marked authenticated.
    const read = await repo(await runningReadJob(job.backup_id!), "read", "GET", `/objects/${manifestKey(job.backup_id!)}`);
    expect(read.status).toBe(200);
    expect(read.headers.get("x-manifest-auth")).toBe("authenticated");
    expect(read.text).toBe(text);
  });

  it("a manifest planted straight into R2 (no MAC) is not accepted at completion", async () => {
    const job = await runningBackupJob();
    const m = validManifest(job.backup_id!);
    await env.BACKUPS.put(manifestKey(job.backup_id!), JSON.stringify(m));
    await complete(job, "write", { status: "succeeded", result: backupResultFor(m) });
    expect(await jobRow(job.id)).toMatchObject({ status: "failed", error_code: "manifest_mismatch", error_message: expect.stringMatching(/valid MAC/) });
    expect(await allBackupRows()).toEqual([]);
  });

  it("an overwritten manifest (attacker's chunks, copied MAC) is refused to a restore and audited", async () => {
    const { job, manifest } = await legitimateBackup();
    const key = manifestKey(job.backup_id!);
    const stolenMac = (await env.BACKUPS.head(key))!.customMetadata!;
    const evil = { ...manifest, chunks: manifest.chunks.map((c) => ({ ...c, pack: "f".repeat(64) })) };
    await env.BACKUPS.put(key, JSON.stringify(evil), { customMetadata: stolenMac });
    const restore = await runningReadJob(job.backup_id!);
    const read = await repo(restore, "read", "GET", `/objects/${key}`);
    expect(read.status).toBe(409);
    expect(read.body.error.code).toBe("manifest_not_authentic");
    expect((await auditRows()).find((a) => a.action === "repository.manifest_forged")).toMatchObject({ outcome: "denied", target: key });
    // Nor can a range read get around the check.
    expect((await repo(restore, "read", "GET", `/objects/${key}`, { headers: { range: "bytes=0-10" } })).status).toBe(400);
  });

  it("manifests from before MACs stay restorable, flagged; after MANIFEST_MAC_SINCE a MAC-less one is a forgery", async () => {
    const row = await seedBackup({ created_at: isoDaysAgo(10) });
    await env.BACKUPS.put(row.manifest_key, JSON.stringify(validManifest(row.id)));
    const job = await runningReadJob(row.id);
    const old = await repo(job, "read", "GET", `/objects/${row.manifest_key}`, {}, { ...macEnv, MANIFEST_MAC_SINCE: "2099-01-01T00:00:00Z" });
    expect(old.status).toBe(200);
    expect(old.headers.get("x-manifest-auth")).toBe("unauthenticated");
    expect((await auditRows()).find((a) => a.action === "repository.manifest_unauthenticated")).toMatchObject({ target: row.manifest_key });
    const since = await repo(job, "read", "GET", `/objects/${row.manifest_key}`, {}, { ...macEnv, MANIFEST_MAC_SINCE: "2020-01-01T00:00:00Z" });
    expect(since.status).toBe(409);
  });

  it("key rotation: manifests MACed with a retired key still verify while it is listed second", async () => {
    const { job } = await (async () => {
      const j = await runningBackupJob();
      const m = validManifest(j.backup_id!);
      expect((await putObject(j, manifestKey(j.backup_id!), JSON.stringify(m), { MANIFEST_MAC_KEY: OLD_KEY })).status).toBe(201);
      return { job: j };
    })();
    const reader = await runningReadJob(job.backup_id!);
    const path = `/objects/${manifestKey(job.backup_id!)}`;
    expect((await repo(reader, "read", "GET", path, {}, { MANIFEST_MAC_KEY: `${MAC_KEY},${OLD_KEY}` })).headers.get("x-manifest-auth")).toBe("authenticated");
    expect((await repo(reader, "read", "GET", path, {}, { MANIFEST_MAC_KEY: MAC_KEY })).status).toBe(409);
  });

  it("catalog rebuild lists MACed and old manifests, flags the old ones, and never lists a planted one", async () => {
    const { job } = await legitimateBackup();
    const oldId = backupIdFor();
    await env.BACKUPS.put(manifestKey(oldId), JSON.stringify(validManifest(oldId)), { customMetadata: {} });
    const plantedId = backupIdFor();
    await env.BACKUPS.put(manifestKey(plantedId), JSON.stringify(validManifest(plantedId)), { customMetadata: { [MAC_METADATA]: `hmac-sha256:${"0".repeat(64)}` } });
    await env.CATALOG.prepare("DELETE FROM backups").run();
    const res = await api("POST", "/catalog/rebuild", { body: { limit: 100 }, env: macEnv });
    expect(res.status, res.text).toBe(200);
    expect(res.body.restored.sort()).toEqual([job.backup_id, oldId].sort());
    expect(res.body.unauthenticated).toEqual([oldId]);
    expect(res.body.invalid).toEqual([manifestKey(plantedId)]);
    expect((await allBackupRows()).map((b) => b.id)).not.toContain(plantedId);
  });

  it("pack_prefix takes only its legal forms", () => {
    const id = backupIdFor();
    const ok = validManifest(id);
    expect(DatabaseManifest.safeParse(ok).error?.issues).toBeUndefined();
    for (const bad of ["../settings/", "tmp/", "archive/db-other-20260101T000000Z-abcdef/packs/", "manifests/", ""]) {
      expect(DatabaseManifest.safeParse({ ...ok, pack_prefix: bad }).success, bad).toBe(false);
    }
    expect(DatabaseManifest.safeParse({ ...ok, type: "archive", pack_prefix: `archive/${id}/packs/` }).success).toBe(true);
    expect(DatabaseManifest.safeParse({ ...ok, type: "archive", pack_prefix: "packs/" }).success).toBe(false);
  });
});

describe("write-once by R2's conditional put", () => {
  it("of two writers racing for one manifest key exactly one wins; the loser is told the object exists", async () => {
    const job = await runningBackupJob();
    const key = manifestKey(job.backup_id!);
    const a = JSON.stringify(validManifest(job.backup_id!, { logicalBytes: 1 }));
    const b = JSON.stringify(validManifest(job.backup_id!, { logicalBytes: 2 }));
    const results = await Promise.all([putObject(job, key, a), putObject(job, key, b)]);
    expect(results.map((r) => r.status).sort()).toEqual([200, 201]);
    expect(results.find((r) => r.status === 200)!.headers.get("x-existed")).toBe("1");
    const winner = results[0]!.status === 201 ? a : b;
    expect(await (await env.BACKUPS.get(key))!.text()).toBe(winner);
    // And a later write never replaces it.
    expect((await putObject(job, key, winner === a ? b : a)).status).toBe(200);
    expect(await (await env.BACKUPS.get(key))!.text()).toBe(winner);
  });
});

describe("an incremental's parent is checked at dispatch", () => {
  /** A RUNNER namespace that records what it is sent (the runner must never hear of a refused job). */
  function recordingRunner() {
    const calls: unknown[] = [];
    const stub = { fetch: async (req: Request) => (calls.push(await req.json()), Response.json({ accepted: true }, { status: 202 })) };
    return { env: { RUNNER: { idFromName: (name: string) => ({ name }), get: () => stub } }, calls };
  }

  async function dispatch(jobId: string, extra: Record<string, unknown>) {
    const batch = createMessageBatch("astrid-backup-jobs", [{ id: `m-${jobId}`, timestamp: new Date(), attempts: 1, body: { job_id: jobId } }]);
    const ctx = createExecutionContext();
    await worker.queue(batch as MessageBatch<unknown>, testEnv({ ...macEnv, ...extra }));
    await getQueueResult(batch, ctx);
  }

  /** The parent as the Worker wrote it (MACed), then changed in R2 by whoever can write there, keeping the MAC. */
  async function tamperedParent(key: string, manifest: object) {
    const bytes = new TextEncoder().encode(JSON.stringify(manifest));
    await env.BACKUPS.put(key, bytes, { customMetadata: await macMetadata(testEnv(macEnv), bytes) });
    const genuine = await env.BACKUPS.head(key);
    const planted = JSON.stringify({ ...manifest, planted: "the attacker's chunks" });
    await env.BACKUPS.put(key, planted, { customMetadata: genuine!.customMetadata! });
  }

  const nothingWritten = async (backupId: string) => {
    const all = await env.BACKUPS.list();
    expect(all.objects.filter((o) => o.key.includes(backupId))).toEqual([]);
    expect((await allBackupRows()).map((b) => b.id)).not.toContain(backupId);
  };

  it("database: a parent manifest changed in R2 refuses the dispatch (parent_not_authentic), audited; the runner is never called", async () => {
    const parent = await seedBackup({ created_at: isoDaysAgo(1) });
    await tamperedParent(parent.manifest_key, validManifest(parent.id));
    const backup_id = backupIdFor("astrid");
    const job = await seedJob({ kind: "database.backup", backup_id, params: { database: "astrid", type: "incremental", backup_id } });
    const runner = recordingRunner();
    await dispatch(job.id, runner.env);
    expect(await jobRow(job.id)).toMatchObject({ status: "failed", error_code: "parent_not_authentic", error_message: expect.stringContaining(parent.manifest_key) });
    expect(runner.calls).toEqual([]);
    await nothingWritten(job.backup_id!);
    expect((await auditRows()).find((a) => a.action === "repository.manifest_forged")).toMatchObject({ target: parent.manifest_key, outcome: "denied" });
  });

  it("database: an intact parent dispatches as before", async () => {
    const parent = await seedBackup({ created_at: isoDaysAgo(1) });
    const bytes = new TextEncoder().encode(JSON.stringify(validManifest(parent.id)));
    await env.BACKUPS.put(parent.manifest_key, bytes, { customMetadata: await macMetadata(testEnv(macEnv), bytes) });
    const job = await seedBackupJob();
    const runner = recordingRunner();
    await dispatch(job.id, runner.env);
    expect(await jobRow(job.id)).toMatchObject({ status: "running" });
    expect(runner.calls).toEqual([expect.objectContaining({ job_id: job.id, parent_manifest_key: parent.manifest_key })]);
  });

  it("ML: a parent manifest changed in R2 refuses the dispatch too", async () => {
    const stamp = (at: Date) => at.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
    const at = new Date(Date.now() - 86_400_000);
    const parentId = `ml-mlflow-${stamp(at)}-m00001`;
    const parent = await seedBackup({ id: parentId, created_at: at.toISOString(), domain: "ml", source: "mlflow", manifest_key: mlManifestKey(parentId) });
    await tamperedParent(parent.manifest_key, { format: "astrid-backup/mlflow", backup_id: parentId });
    const backupId = `ml-mlflow-${stamp(new Date())}-m00002`;
    const job = await seedJob({ kind: "ml.backup", backup_id: backupId, params: { server: "mlflow", backup_id: backupId, registry: true } });
    const runner = recordingRunner();
    await dispatch(job.id, { ...runner.env, MLFLOW_TRACKING_URI: "http://127.0.0.1:5000" });
    expect(await jobRow(job.id)).toMatchObject({ status: "failed", error_code: "parent_not_authentic" });
    expect(runner.calls).toEqual([]);
    await nothingWritten(backupId);
  });
});
