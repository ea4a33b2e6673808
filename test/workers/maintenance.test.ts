// Repository maintenance on the Worker side: range reads out of packs, the
// listing and deletion that garbage collection uses, its exclusivity with
// other jobs, and the catalog rebuild from manifests.
import { createMessageBatch, env, getQueueResult, createExecutionContext, SELF } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import worker from "../../workers/index.ts";
import { mintJobToken, type JobGrant } from "../../workers/repository/job-token.ts";
import { manifestKey } from "../../workers/shared/format.ts";
import type { JobRow } from "../../workers/catalog/schema.ts";
import { ADMIN, VIEWER, api, backupIdFor, isoSecondsAgo, jobRow, resetState, seedJob, sha256Hex, testEnv, validManifest } from "./helpers.ts";

beforeEach(resetState);

const PACK = `packs/ee/${"e".repeat(64)}`;

async function tokenFor(job: JobRow, scope: JobGrant["scope"]) {
  return mintJobToken(env.JOB_TOKEN_SECRET, { job_id: job.id, scope, backup_id: job.backup_id ?? "-", expires: Math.floor(Date.now() / 1000) + 3600 });
}

const running = (kind: JobRow["kind"], params: unknown = {}) =>
  seedJob({ kind, params, status: "running", attempts: 1, started_at: isoSecondsAgo(5), heartbeat_at: isoSecondsAgo(1) });

function repo(method: string, path: string, token: string, init: { body?: string; headers?: Record<string, string> } = {}) {
  return SELF.fetch(`https://backup.test/repo/v1${path}`, { method, headers: { authorization: `Bearer ${token}`, ...init.headers }, ...(init.body ? { body: init.body } : {}) });
}

describe("range reads", () => {
  it("serve exactly the asked bytes with 206 and a Content-Range", async () => {
    await env.BACKUPS.put(PACK, "0123456789abcdef");
    const token = await tokenFor(await running("database.restore"), "read");
    const res = await repo("GET", `/objects/${PACK}`, token, { headers: { range: "bytes=4-9" } });
    expect(res.status).toBe(206);
    expect(await res.text()).toBe("456789");
    expect(res.headers.get("content-range")).toBe("bytes 4-9/16");
  });

  it("refuse malformed and unsatisfiable ranges", async () => {
    await env.BACKUPS.put(PACK, "0123456789abcdef");
    const token = await tokenFor(await running("database.restore"), "read");
    expect((await repo("GET", `/objects/${PACK}`, token, { headers: { range: "bytes=9-4" } })).status).toBe(400);
    expect((await repo("GET", `/objects/${PACK}`, token, { headers: { range: "lines=1-2" } })).status).toBe(400);
    const past = await repo("GET", `/objects/${PACK}`, token, { headers: { range: "bytes=10-99" } });
    expect([400, 416]).toContain(past.status);
  });
});

describe("listing and deleting for garbage collection", () => {
  it("lists a prefix with sizes and upload times, and pages by cursor", async () => {
    for (let i = 0; i < 3; i++) await env.BACKUPS.put(`packs/0${i}/${String(i).repeat(64)}`, "x".repeat(i + 1));
    const token = await tokenFor(await running("repository.gc", { grace_minutes: 0, dry_run: false }), "gc");
    const page = await (await repo("GET", "/list?prefix=packs/", token)).json<any>();
    expect(page.objects.map((o: any) => o.size)).toEqual([1, 2, 3]);
    expect(Date.parse(page.objects[0].uploaded)).toBeGreaterThan(Date.now() - 60_000);
    expect((await repo("GET", "/list?prefix=secrets/", token)).status).toBe(400);
  });

  it("deletes packs for a gc token only, never manifests", async () => {
    await env.BACKUPS.put(PACK, "x");
    const manifest = manifestKey(backupIdFor());
    await env.BACKUPS.put(manifest, "{}");
    const gcToken = await tokenFor(await running("repository.gc", { grace_minutes: 0, dry_run: false }), "gc");
    const readToken = await tokenFor(await running("database.verify"), "read");
    const del = (token: string, keys: string[]) => repo("POST", "/delete", token, { body: JSON.stringify({ keys }), headers: { "content-type": "application/json" } });

    expect((await del(readToken, [PACK])).status).toBe(403);
    expect((await del(gcToken, [manifest])).status).toBe(400);
    expect((await del(gcToken, ["packs/../manifests/x"])).status).toBe(400);
    expect(await env.BACKUPS.head(manifest)).not.toBeNull();
    expect((await del(gcToken, [PACK])).status).toBe(200);
    expect(await env.BACKUPS.head(PACK)).toBeNull();
  });
});

describe("garbage collection is exclusive", () => {
  async function deliver(jobId: string) {
    const queue: unknown[] = [];
    const e = testEnv({ JOBS: { send: async (m: unknown) => void queue.push(m), sendBatch: async () => {} } });
    const batch = createMessageBatch("astrid-backup-jobs", [{ id: "m1", timestamp: new Date(), attempts: 1, body: { job_id: jobId } }]);
    const ctx = createExecutionContext();
    await worker.queue(batch as MessageBatch<unknown>, e);
    return { result: await getQueueResult(batch, ctx), resent: queue };
  }

  it("a backup waits while GC runs: the job stays queued and is re-sent, not retried", async () => {
    await running("repository.gc", { grace_minutes: 0, dry_run: false });
    const backup = await seedJob({ kind: "database.backup", params: { database: "astrid", type: "full", backup_id: backupIdFor() }, status: "queued" });
    const { result, resent } = await deliver(backup.id);
    expect(result.explicitAcks).toEqual(["m1"]);
    expect(result.retryMessages).toEqual([]);
    expect(resent).toEqual([{ job_id: backup.id }]);
    expect((await jobRow(backup.id))?.status).toBe("queued");
  });

  it("GC waits while any other job runs", async () => {
    await running("database.restore");
    const gc = await seedJob({ kind: "repository.gc", params: { grace_minutes: 0, dry_run: false }, status: "queued" });
    const { resent } = await deliver(gc.id);
    expect(resent).toEqual([{ job_id: gc.id }]);
    expect((await jobRow(gc.id))?.status).toBe("queued");
  });

  it("a GC whose runner went silent does not block others", async () => {
    await seedJob({ kind: "repository.gc", params: {}, status: "running", heartbeat_at: isoSecondsAgo(3600) });
    const backup = await seedJob({ kind: "database.backup", params: { database: "astrid", type: "full", backup_id: backupIdFor() }, status: "queued" });
    const { resent } = await deliver(backup.id);
    expect(resent).toEqual([]);
    // it was claimed (then dispatch to the unreachable test runner failed and it went back to queued with the reason)
    expect((await jobRow(backup.id))?.attempts).toBe(1);
  });

  it("POST /repository/gc queues a job with the configured grace period; viewers may not", async () => {
    expect((await api("POST", "/repository/gc", { token: VIEWER, body: {} })).status).toBe(403);
    const res = await api("POST", "/repository/gc", { token: ADMIN, body: { dry_run: true } });
    expect(res.status).toBe(202);
    expect(JSON.parse((await jobRow(res.body.job_id))!.params)).toEqual({ grace_minutes: 1440, dry_run: true });
    expect((await api("POST", "/repository/gc", { token: ADMIN, body: { grace_minutes: -1 } })).status).toBe(400);
  });
});

describe("catalog rebuild", () => {
  it("restores rows from valid manifests, skips present ones, and names unreadable ones", async () => {
    const a = backupIdFor("astrid", new Date(Date.now() - 60_000));
    const b = backupIdFor("astrid");
    for (const id of [a, b]) {
      const text = JSON.stringify(validManifest(id));
      await env.BACKUPS.put(manifestKey(id), text, { sha256: await sha256Hex(text) });
    }
    await env.BACKUPS.put("manifests/database/db-astrid-20260101T000000Z-broken.json", "not json");
    const first = await api("POST", "/catalog/rebuild", { token: ADMIN, body: {} });
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ scanned: 3, present: 0, invalid: ["manifests/database/db-astrid-20260101T000000Z-broken.json"] });
    expect([...first.body.restored].sort()).toEqual([a, b].sort());
    const listed = await api("GET", "/backup/database", { token: VIEWER });
    expect(listed.body.backups.map((x: any) => x.backup_id)).toEqual([b, a]);
    const again = await api("POST", "/catalog/rebuild", { token: ADMIN, body: {} });
    expect(again.body).toMatchObject({ restored: [], present: 2 });
    expect((await api("POST", "/catalog/rebuild", { token: VIEWER, body: {} })).status).toBe(403);
  });

  it("pages with next_cursor", async () => {
    for (let i = 0; i < 3; i++) {
      const id = backupIdFor("astrid", new Date(Date.now() - i * 60_000));
      await env.BACKUPS.put(manifestKey(id), JSON.stringify(validManifest(id)));
    }
    const page1 = await api("POST", "/catalog/rebuild", { token: ADMIN, body: { limit: 2 } });
    expect(page1.body.scanned).toBe(2);
    expect(page1.body.next_cursor).toBeTruthy();
    const page2 = await api("POST", "/catalog/rebuild", { token: ADMIN, body: { cursor: page1.body.next_cursor } });
    expect(page2.body.scanned).toBe(1);
    expect(page2.body.next_cursor).toBe("m:"); // on to the ML manifests, then the storage snapshot manifests
    const page3 = await api("POST", "/catalog/rebuild", { token: ADMIN, body: { cursor: page2.body.next_cursor } });
    expect(page3.body).toMatchObject({ scanned: 0, next_cursor: "s:" });
    const page4 = await api("POST", "/catalog/rebuild", { token: ADMIN, body: { cursor: page3.body.next_cursor } });
    expect(page4.body.scanned).toBe(0);
    expect(page4.body.next_cursor).toBeUndefined();
  });
});
