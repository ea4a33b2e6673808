// Versioning and replication from R2 event notifications, inside workerd.
// R2 delivers at least once, unordered, after the fact: these tests deliver
// events the same way (twice, reversed, late) and check the version store
// and the replica end up right, and that reconciliation repairs what no event told.
import { env } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { api, resetState } from "./helpers.ts";
import {
  bytes, contents, data, deleteEvent, deliverEvents, drive, putEvent, replica, resetStorage, scratch, sha256Hex, target,
} from "./storage-support.ts";

beforeEach(async () => {
  await resetState();
  await resetStorage();
});

async function enableVersioning(bucket: string) {
  const res = await api("POST", "/storage/versioning", { body: { bucket } });
  expect(res.status, res.text).toBe(200);
  expect(res.body.notification_rule.command).toContain(`notification create ${bucket}`);
  const baseline = await drive(res.body.baseline_job.job_id);
  expect(baseline.job.status).toBe("succeeded");
  return JSON.parse(baseline.job.result!);
}

async function versions(bucket: string, key: string) {
  const res = await api("GET", `/storage/versions?bucket=${bucket}&key=${encodeURIComponent(key)}`);
  expect(res.status, res.text).toBe(200);
  return res.body.versions as { event_time: string; action: string; etag: string; sha256: string | null; captured: boolean; source: string }[];
}

const pause = () => new Promise((r) => setTimeout(r, 5));

describe("versioning", () => {
  it("captures every create and delete from events; redelivery and reordering change nothing", async () => {
    await scratch().put("existing.txt", "was here before");
    expect(await enableVersioning("astrid-scratch")).toMatchObject({ captured: 1 }); // the baseline
    const v1 = await scratch().put("obs.csv", "v1");
    const e1 = putEvent("astrid-scratch", v1!);
    await deliverEvents([e1]);
    await pause();
    const v2 = await scratch().put("obs.csv", "v2 longer");
    const e2 = putEvent("astrid-scratch", v2!);
    await pause();
    await scratch().delete("obs.csv");
    const del = deleteEvent("astrid-scratch", "obs.csv", new Date());
    // Delete before create, create twice: at least once, in any order.
    await deliverEvents([del, e2, e1, e2]);
    const list = await versions("astrid-scratch", "obs.csv");
    expect(list.map((v) => v.action)).toEqual(["delete", "put", "put"]); // newest first, by event time
    expect(list[1]).toMatchObject({ etag: v2!.etag, captured: false }); // v2 was gone when its event arrived
    expect(list[2]).toMatchObject({ etag: v1!.etag, captured: true, sha256: await sha256Hex("v1") });
  });

  it("a version is restorable as of any time; a rapid overwrite loses only what notifications could not see", async () => {
    await enableVersioning("astrid-scratch");
    const a = await scratch().put("frame.fits", bytes(2000, 1), { httpMetadata: { contentType: "image/fits" } });
    await deliverEvents([putEvent("astrid-scratch", a!)]);
    await pause();
    const t1 = new Date();
    await pause();
    const b = await scratch().put("frame.fits", bytes(3000, 2));
    await deliverEvents([putEvent("astrid-scratch", b!)]);
    await pause();
    const t2 = new Date();
    await pause();
    await scratch().delete("frame.fits");
    await deliverEvents([deleteEvent("astrid-scratch", "frame.fits", new Date())]);

    const at = async (asOf: Date) => {
      const res = await api("POST", "/storage/restore", { body: { bucket: "astrid-scratch", as_of: asOf.toISOString(), target_bucket: "restore-target", overwrite: true } });
      expect(res.status, res.text).toBe(202);
      const driven = await drive(res.body.job_id);
      expect(driven.job.status, driven.job.error_message ?? "").toBe("succeeded");
      return contents(target());
    };
    expect(await at(t1)).toEqual({ "frame.fits": await sha256Hex(bytes(2000, 1)) });
    expect((await target().head("frame.fits"))!.httpMetadata?.contentType).toBe("image/fits");
    expect(await at(t2)).toEqual({ "frame.fits": await sha256Hex(bytes(3000, 2)) });
  });

  it("the write-through route records every version, even overwrites faster than any notification", async () => {
    await enableVersioning("astrid-scratch");
    for (const text of ["one", "two", "three"]) {
      const res = await api("PUT", `/storage/objects/astrid-scratch/runs/${encodeURIComponent("log file.txt")}`, { rawBody: text, headers: { "content-type": "text/plain", "content-length": String(text.length) } });
      expect(res.status, res.text).toBe(201);
      await pause();
    }
    const list = await versions("astrid-scratch", "runs/log file.txt");
    expect(list.map((v) => v.sha256)).toEqual([await sha256Hex("three"), await sha256Hex("two"), await sha256Hex("one")]);
    expect(list.every((v) => v.source === "write-through")).toBe(true);
  });

  it("reconciliation captures objects whose events never came, and deletes that were never announced", async () => {
    await enableVersioning("astrid-scratch");
    await scratch().put("silent-1.txt", "no event");
    await scratch().put("silent-2.txt", "no event either");
    const first = await drive((await api("POST", "/storage/reconcile", { body: { bucket: "astrid-scratch" } })).body.job_id);
    expect(JSON.parse(first.job.result!)).toMatchObject({ captured: 2, deleted: 0, drift: 2 });
    await scratch().delete("silent-1.txt");
    const second = await drive((await api("POST", "/storage/reconcile", { body: { bucket: "astrid-scratch" } })).body.job_id);
    expect(JSON.parse(second.job.result!)).toMatchObject({ captured: 0, deleted: 1, drift: 1 });
    expect((await versions("astrid-scratch", "silent-1.txt")).map((v) => v.action)).toEqual(["delete", "put"]);
  });
});

describe("replication", () => {
  // astrid-data -> astrid-data-replica is configured statically (STORAGE_REPLICATION in wrangler.toml).
  it("copies creates and deletes from events, with metadata; stale events cannot roll the replica back", async () => {
    const v1 = await data().put("img/a.fits", bytes(5000, 1), { customMetadata: { band: "r" }, httpMetadata: { contentType: "image/fits" } });
    await deliverEvents([putEvent("astrid-data", v1!)]);
    expect(await contents(replica())).toEqual({ "img/a.fits": await sha256Hex(bytes(5000, 1)) });
    const copy = await replica().head("img/a.fits");
    expect(copy!.customMetadata).toMatchObject({ band: "r" });
    expect(copy!.httpMetadata?.contentType).toBe("image/fits");

    const v2 = await data().put("img/a.fits", bytes(5000, 2));
    await deliverEvents([putEvent("astrid-data", v2!), putEvent("astrid-data", v1!)]); // v1's event again, late
    expect(await contents(replica())).toEqual({ "img/a.fits": await sha256Hex(bytes(5000, 2)) });

    const early = new Date(Date.now() - 60_000);
    await deliverEvents([deleteEvent("astrid-data", "img/a.fits", early)]); // a stale delete: the source still has it
    expect(await replica().head("img/a.fits")).not.toBeNull();
    await data().delete("img/a.fits");
    await deliverEvents([deleteEvent("astrid-data", "img/a.fits", new Date())]);
    expect(await contents(replica())).toEqual({});
  });

  it("reconciliation repairs drift both ways and the status reports lag and drift", async () => {
    await data().put("x/1.bin", bytes(100, 1));
    await data().put("x/2.bin", bytes(100, 2));
    await replica().put("x/orphan.bin", "left over");
    const res = await api("POST", "/storage/reconcile", { body: { bucket: "astrid-data" } });
    const driven = await drive(res.body.job_id, { STORAGE_PAGE_SIZE: "1" });
    expect(JSON.parse(driven.job.result!)).toMatchObject({ captured: 2, replicated: 2, replica_removed: 1, drift: 5 }); // versioned by default too
    expect(await contents(replica())).toEqual(await contents(data()));
    const again = await drive((await api("POST", "/storage/reconcile", { body: { bucket: "astrid-data" } })).body.job_id);
    expect(JSON.parse(again.job.result!).drift).toBe(0);

    // Lag comes from events only: reconciliation repairs drift, it has no event time to measure from.
    const quiet = await api("GET", "/storage/replication", { token: "test-viewer-token-0123456789" });
    expect(quiet.body.buckets.find((b: { bucket: string }) => b.bucket === "astrid-data").lag_seconds.changes_last_hour).toBe(0);
    const v = await data().put("x/3.bin", bytes(100, 3));
    await deliverEvents([putEvent("astrid-data", v!)]);
    const status = await api("GET", "/storage/replication", { token: "test-viewer-token-0123456789" });
    const entry = status.body.buckets.find((b: { bucket: string }) => b.bucket === "astrid-data");
    expect(entry).toMatchObject({ replica: "astrid-data-replica", drift_objects: 0 });
    expect(entry.lag_seconds.changes_last_hour).toBe(1);
    expect(entry.lag_seconds.p99).toBeLessThan(60);
    expect(entry.last_reconciled_at).not.toBeNull();
  });

  it("the storage status tells, per source, the snapshot age and whether continuous protection meets the RPO", async () => {
    await data().put("s.bin", "x");
    const res = await api("POST", "/backup/storage", { body: { bucket: "astrid-data" } });
    await drive(res.body.jobs[0].job_id);
    const status = await api("GET", "/backup/storage/status", { token: "test-viewer-token-0123456789" });
    const src = status.body.sources.find((s: { bucket: string }) => s.bucket === "astrid-data");
    expect(src).toMatchObject({ prefix: "", snapshot_age_minutes: 0, versioning: true, replica: "astrid-data-replica", rpo_target_minutes: 15, rpo_met: true });
    expect(src.latest_snapshot.id).toBe(res.body.jobs[0].snapshot_id);
    const scratchSrc = status.body.sources.find((s: { bucket: string }) => s.bucket === "astrid-scratch");
    expect(scratchSrc).toMatchObject({ latest_snapshot: null, versioning: true, replica: null }); // versioned, so continuously protected
    const off = await api("GET", "/backup/storage/status", { token: "test-viewer-token-0123456789", env: { STORAGE_VERSIONING_ENABLED: "false" } });
    expect(off.body.sources.find((s: { bucket: string }) => s.bucket === "astrid-scratch")).toMatchObject({ versioning: false, rpo_met: false });
  });

  it("replication switched on through the API starts with a full sync", async () => {
    await scratch().put("p/q.txt", "to be replicated");
    const res = await api("POST", "/storage/replication", { body: { source: "astrid-scratch", target: "restore-target" } });
    expect(res.status, res.text).toBe(200);
    const sync = await drive(res.body.initial_sync_job.job_id);
    expect(sync.job.status).toBe("succeeded");
    expect(await contents(target())).toEqual(await contents(scratch()));
    expect((await target().head("p/q.txt"))!.customMetadata).toMatchObject({ "astrid-source-etag": (await scratch().head("p/q.txt"))!.etag });
  });

  it("an event for a bucket nobody protects is acknowledged and ignored", async () => {
    const result = await deliverEvents([{ action: "PutObject", bucket: "somebody-else", object: { key: "k", eTag: "e" }, eventTime: new Date().toISOString() }]);
    expect(result.explicitAcks.length).toBe(1);
    expect(await env.CATALOG.prepare("SELECT count(*) AS n FROM object_versions").first("n")).toBe(0);
  });
});
