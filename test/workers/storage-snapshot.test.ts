// Storage snapshots and their restore, inside workerd with real local R2
// buckets: bytes and metadata come back equal, unchanged objects are not
// copied again, identical content is stored once, work is split into steps
// that resume after a failure, and conflicts are never silently overwritten.
import { createMessageBatch, env } from "cloudflare:test";
import worker from "../../workers/index.ts";
import { beforeEach, describe, expect, it } from "vitest";
import { blobKey, SnapshotManifest, snapshotManifestKey, snapshotPartKey, STORAGE_BLOB_PREFIX } from "../../workers/shared/format.ts";
import { api, recordingQueue, resetState, testEnv } from "./helpers.ts";
import { parseLifecycleRules, saveLifecycleRules } from "../../workers/storage/lifecycle.ts";
import { bytes, contents, data, drive, openBlob, resetStorage, scratch, sha256Hex, storedBlobKey, target } from "./storage-support.ts";

beforeEach(async () => {
  await resetState();
  await resetStorage();
});

const SMALL_PAGES = { STORAGE_PAGE_SIZE: "3" };

async function seedData() {
  await data().put("images/2026/m31.fits", bytes(40_000, 1), { httpMetadata: { contentType: "image/fits", cacheControl: "max-age=60" }, customMetadata: { telescope: "ZTF" } });
  await data().put("images/2026/m33.fits", bytes(30_000, 2), { httpMetadata: { contentType: "image/fits" } });
  await data().put("images/2026/copy-of-m31.fits", bytes(40_000, 1)); // same bytes, other key
  await data().put("catalog/readme.txt", "star catalog\n");
  await data().put("odd keys/ümlaut & space %20.txt", "odd");
  await data().put("empty.bin", new Uint8Array(0));
  await data().put("deep/a/b/c/d/e.json", JSON.stringify({ ra: 10.68, dec: 41.27 }));
}

async function snapshot(bucket = "astrid-data", prefix = "", vars: Record<string, unknown> = SMALL_PAGES) {
  const res = await api("POST", "/backup/storage", { body: { bucket, prefix }, env: vars });
  expect(res.status).toBe(202);
  const [{ job_id, snapshot_id }] = res.body.jobs;
  const driven = await drive(job_id, vars);
  expect(driven.job.status, driven.job.error_message ?? "").toBe("succeeded");
  return { snapshot_id: snapshot_id as string, result: JSON.parse(driven.job.result!), steps: driven.steps };
}

async function blobCount(): Promise<number> {
  return (await env.BACKUPS.list({ prefix: STORAGE_BLOB_PREFIX })).objects.length;
}

describe("storage snapshot", () => {
  it("copies every object into content-addressed blobs, in steps, and lists the snapshot only when complete", async () => {
    await seedData();
    const { snapshot_id, result, steps } = await snapshot();
    expect(steps).toBeGreaterThanOrEqual(3); // 7 objects, 3 per step
    expect(result).toMatchObject({ objects: 7, copied_objects: 6 }); // copy-of-m31 is the same bytes as m31
    expect(await blobCount()).toBe(6);
    const manifest = SnapshotManifest.parse(await (await env.BACKUPS.get(snapshotManifestKey(snapshot_id)))!.json());
    expect(manifest.stats.objects).toBe(7);
    const listed = await api("GET", "/backup/storage?bucket=astrid-data");
    expect(listed.body.snapshots.map((s: { id: string }) => s.id)).toEqual([snapshot_id]);
    // Each blob holds the bytes its name stands for, encrypted: the identity opens it, and it is not the plaintext.
    const sha = await sha256Hex(bytes(40_000, 1));
    expect(await env.BACKUPS.head(blobKey(sha))).toBeNull(); // the address is keyed, not the content hash
    expect(await sha256Hex(await (await env.BACKUPS.get(await storedBlobKey(sha)))!.arrayBuffer())).not.toBe(sha);
    expect(await sha256Hex((await openBlob(sha))!)).toBe(sha);
  });

  it("a second snapshot copies only what changed, and references the rest", async () => {
    await seedData();
    await snapshot();
    await data().put("images/2026/m33.fits", bytes(30_000, 99)); // changed
    await data().put("images/2026/new.fits", bytes(5_000, 7)); // added
    await data().delete("catalog/readme.txt"); // deleted
    const second = await snapshot();
    expect(second.result).toMatchObject({ objects: 7, copied_objects: 2, copied_bytes: 35_000 });
    const third = await snapshot();
    expect(third.result).toMatchObject({ objects: 7, copied_objects: 0, copied_bytes: 0 });
  });

  it("snapshots a prefix only", async () => {
    await seedData();
    const { result } = await snapshot("astrid-data", "images/");
    expect(result.objects).toBe(3);
  });

  it("resumes a failed step without starting over", async () => {
    await seedData();
    let failures = 0;
    const flaky = new Proxy(data(), {
      get(t, prop) {
        if (prop === "get") {
          return async (key: string, opts?: R2GetOptions) => {
            if (key === "images/2026/m33.fits" && failures++ === 0) throw new Error("R2 hiccup");
            return t.get(key, opts);
          };
        }
        const v = Reflect.get(t, prop);
        return typeof v === "function" ? v.bind(t) : v;
      },
    });
    const res = await api("POST", "/backup/storage", { body: { bucket: "astrid-data" }, env: SMALL_PAGES });
    const driven = await drive(res.body.jobs[0].job_id, { ...SMALL_PAGES, ASTRID_DATA: flaky });
    expect(driven.retries).toBe(1);
    expect(driven.job.status).toBe("succeeded");
    // Blobs the failed attempt had already written count as present on the retry, not copied twice.
    expect(JSON.parse(driven.job.result!).objects).toBe(7);
    expect(await blobCount()).toBe(6);
    expect(await env.BACKUPS.head(await storedBlobKey(await sha256Hex(bytes(30_000, 2))))).not.toBeNull();
  });

  it("large objects go through multipart and come back identical", async () => {
    const vars = { ...SMALL_PAGES, STORAGE_MULTIPART_THRESHOLD_BYTES: String(5 * 1024 * 1024), STORAGE_PART_SIZE_BYTES: String(5 * 1024 * 1024) };
    const big = bytes(11 * 1024 * 1024 + 123, 5);
    await data().put("big/survey.tar", big, { httpMetadata: { contentType: "application/x-tar" } });
    const { snapshot_id } = await snapshot("astrid-data", "", vars);
    const restore = await api("POST", `/backup/storage/${snapshot_id}/restore`, { body: { target_bucket: "restore-target" }, env: vars });
    expect(restore.status).toBe(202);
    const driven = await drive(restore.body.job_id, vars);
    expect(driven.job.status, driven.job.error_message ?? "").toBe("succeeded");
    const back = await target().get("big/survey.tar");
    expect(back!.httpMetadata?.contentType).toBe("application/x-tar");
    expect(await sha256Hex(await back!.arrayBuffer())).toBe(await sha256Hex(big));
  }, 30_000);
});

describe("storage restore", () => {
  async function restore(snapshotId: string, body: Record<string, unknown>) {
    const res = await api("POST", `/backup/storage/${snapshotId}/restore`, { body, env: SMALL_PAGES });
    expect(res.status, res.text).toBe(202);
    const driven = await drive(res.body.job_id, SMALL_PAGES);
    return { job: driven.job, result: JSON.parse(driven.job.result ?? "{}") };
  }

  it("restores a whole snapshot into another bucket: same bytes, same metadata", async () => {
    await seedData();
    const before = await contents(data());
    const { snapshot_id } = await snapshot();
    await data().put("images/2026/m31.fits", "overwritten later"); // the source moves on
    const { job, result } = await restore(snapshot_id, { target_bucket: "restore-target" });
    expect(job.status).toBe("succeeded");
    expect(result).toMatchObject({ restored: 7, conflicts: 0 });
    expect(await contents(target())).toEqual(before);
    const m31 = await target().head("images/2026/m31.fits");
    expect(m31!.httpMetadata).toMatchObject({ contentType: "image/fits", cacheControl: "max-age=60" });
    expect(m31!.customMetadata).toEqual({ telescope: "ZTF" });
  });

  it("refuses a snapshot whose manifest or part was changed in R2 (its MAC no longer matches), restoring nothing", async () => {
    const withMac = { ...SMALL_PAGES, MANIFEST_MAC_KEY: "storage-manifest-mac-key-0123456789" };
    await seedData();
    const { snapshot_id } = await snapshot("astrid-data", "", withMac);
    const key = snapshotPartKey(snapshot_id, 1);
    const part = (await env.BACKUPS.get(key))!;
    expect(part.customMetadata?.["astrid-mac"]).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
    // Whoever can write to R2 points an entry at other bytes, keeping the old MAC (they cannot compute a new one).
    const planted = (await part.text()).replace(/"blobs":\["[0-9a-f]{64}"/, `"blobs":["${"0".repeat(64)}"`);
    expect(planted).not.toBe(await (await env.BACKUPS.get(key))!.text());
    await env.BACKUPS.put(key, planted, { customMetadata: part.customMetadata! });
    const res = await api("POST", `/backup/storage/${snapshot_id}/restore`, { body: { target_bucket: "restore-target" }, env: withMac });
    const driven = await drive(res.body.job_id, withMac);
    expect(driven.job).toMatchObject({ status: "failed", error_code: "manifest_not_authentic" });
    expect(await contents(target())).toEqual({});
  });

  it("restores a prefix, or one object", async () => {
    await seedData();
    const { snapshot_id } = await snapshot();
    expect((await restore(snapshot_id, { target_bucket: "restore-target", prefix: "images/" })).result.restored).toBe(3);
    expect(Object.keys(await contents(target())).sort()).toEqual(["images/2026/copy-of-m31.fits", "images/2026/m31.fits", "images/2026/m33.fits"]);
    const one = await restore(snapshot_id, { target_bucket: "astrid-scratch", key: "odd keys/ümlaut & space %20.txt" });
    expect(one.result.restored).toBe(1);
    expect(await (await scratch().get("odd keys/ümlaut & space %20.txt"))!.text()).toBe("odd");
  });

  it("into the original bucket: unchanged objects are left alone, deleted ones come back, newer data is a conflict", async () => {
    await seedData();
    const { snapshot_id } = await snapshot();
    await data().delete("catalog/readme.txt");
    await data().put("images/2026/m33.fits", "newer data");
    const dry = await restore(snapshot_id, { dry_run: true });
    expect(dry.result).toMatchObject({ dry_run: true, restored: 1, conflicts: 1, unchanged: 5, conflict_keys: ["images/2026/m33.fits"] });
    expect(await data().head("catalog/readme.txt")).toBeNull(); // a dry run writes nothing
    const careful = await restore(snapshot_id, {});
    expect(careful.job.status).toBe("failed");
    expect(careful.job.error_code).toBe("restore_conflicts");
    expect(await (await data().get("images/2026/m33.fits"))!.text()).toBe("newer data");
    expect(await (await data().get("catalog/readme.txt"))!.text()).toBe("star catalog\n");
    const forced = await restore(snapshot_id, { overwrite: true });
    expect(forced.job.status).toBe("succeeded");
    expect(await sha256Hex(await (await data().get("images/2026/m33.fits"))!.arrayBuffer())).toBe(await sha256Hex(bytes(30_000, 2)));
  });

  it("fails loudly when a blob is missing from the backup bucket", async () => {
    await seedData();
    const { snapshot_id } = await snapshot();
    await env.BACKUPS.delete(await storedBlobKey(await sha256Hex("star catalog\n")));
    const { job, result } = await restore(snapshot_id, { target_bucket: "restore-target" });
    expect(job.status).toBe("failed");
    expect(job.error_code).toBe("restore_incomplete");
    expect(result.missing).toBe(1);
    expect(await target().head("catalog/readme.txt")).toBeNull();
  });
});

describe("catalog rebuild", () => {
  it("brings storage snapshot rows back from their manifests after D1 is wiped", async () => {
    await seedData();
    const { snapshot_id } = await snapshot();
    const before = await env.CATALOG.prepare("SELECT * FROM storage_snapshots").first();
    await env.CATALOG.prepare("DELETE FROM storage_snapshots").run();
    const restored: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await api("POST", "/catalog/rebuild", { body: cursor ? { cursor } : {} });
      expect(page.status).toBe(200);
      restored.push(...page.body.restored);
      cursor = page.body.next_cursor;
    } while (cursor);
    expect(restored).toEqual([snapshot_id]); // the part files one level down are not mistaken for manifests
    expect(await env.CATALOG.prepare("SELECT * FROM storage_snapshots").first()).toEqual({ ...before, job_id: null });
  });
});

describe("storage routes refuse bad input", () => {
  it.each([
    ["POST", "/backup/storage", { bucket: "no-such-bucket" }, 404, "unknown_bucket"],
    ["POST", "/backup/storage", { bucket: "Bad_Name" }, 400, "invalid_request"],
    ["POST", "/backup/storage", { bucket: "astrid-backups" }, 400, "backup_bucket"],
    ["POST", "/backup/storage", { bucket: "astrid-data", prefix: "images/../secrets/" }, 400, "invalid_request"],
    ["POST", "/backup/storage", { bucket: "astrid-data", prefix: "a\u0000b" }, 400, "invalid_request"],
    ["POST", "/backup/storage", { prefix: "images/" }, 400, "invalid_request"],
    ["POST", "/storage/replication", { source: "astrid-data", target: "astrid-data" }, 400, "invalid_request"],
    ["POST", "/storage/replication", { source: "astrid-data", target: "astrid-backups" }, 400, "backup_bucket"],
    ["POST", "/storage/versioning", { bucket: "nope-nope" }, 404, "unknown_bucket"],
    ["POST", "/storage/restore", { bucket: "astrid-data", as_of: "yesterday" }, 400, "invalid_request"],
    ["POST", "/storage/restore", { bucket: "astrid-data-replica", as_of: "2026-01-01T00:00:00Z" }, 409, "versioning_off"],
  ])("%s %s %j -> %i %s", async (method, path, body, status, code) => {
    const res = await api(method, path, { body });
    expect(res.status, res.text).toBe(status);
    expect(res.body.error.code).toBe(code);
  });

  it("restore: unknown snapshot, target that is the backup bucket, key outside the prefix", async () => {
    await seedData();
    const { snapshot_id } = await snapshot();
    expect((await api("POST", "/backup/storage/st-nope-20260101T000000Z-abcdef/restore", { body: {} })).status).toBe(404);
    const intoBackups = await api("POST", `/backup/storage/${snapshot_id}/restore`, { body: { target_bucket: "astrid-backups" } });
    expect(intoBackups.body.error.code).toBe("backup_bucket");
    const outside = await api("POST", `/backup/storage/${snapshot_id}/restore`, { body: { prefix: "images/", key: "catalog/readme.txt" } });
    expect(outside.status).toBe(400);
    expect(outside.body.error.message).toMatch(/not under prefix/);
    const viewer = await api("POST", `/backup/storage/${snapshot_id}/restore`, { body: {}, token: "test-viewer-token-0123456789" });
    expect(viewer.status).toBe(403);
  });
});

describe("storage retention and garbage collection", () => {
  const daysAgo = (n: number) => new Date(Date.now() - n * 86_400_000).toISOString();

  it("removes expired snapshots (never the newest), then GC reclaims only blobs nothing references", async () => {
    await data().put("a.bin", bytes(1000, 1));
    await data().put("b.bin", bytes(1000, 2));
    const old = await snapshot();
    await data().put("b.bin", bytes(1000, 3)); // b's first bytes are now referenced only by the old snapshot
    const current = await snapshot();
    await env.CATALOG.prepare("UPDATE storage_snapshots SET created_at = ? WHERE id = ?").bind(daysAgo(40), old.snapshot_id).run();

    const dry = await api("POST", "/backup/storage/cleanup", { body: { dry_run: true } });
    expect(dry.body).toMatchObject({ dry_run: true, retention_days: 30, removed_snapshots: [old.snapshot_id] });
    expect(await env.BACKUPS.head(snapshotManifestKey(old.snapshot_id))).not.toBeNull();
    const real = await api("POST", "/backup/storage/cleanup", { body: {} });
    expect(real.body.removed_snapshots).toEqual([old.snapshot_id]);
    expect(await env.BACKUPS.head(snapshotManifestKey(old.snapshot_id))).toBeNull();
    expect((await env.BACKUPS.list({ prefix: `manifests/storage/${old.snapshot_id}/` })).objects).toEqual([]);
    // The newest snapshot stays however old it is.
    await env.CATALOG.prepare("UPDATE storage_snapshots SET created_at = ?").bind(daysAgo(400)).run();
    expect((await api("POST", "/backup/storage/cleanup", { body: {} })).body.removed_snapshots).toEqual([]);

    const gcDry = await drive((await api("POST", "/storage/gc", { body: { grace_minutes: 0, dry_run: true }, env: { GC_GRACE_MINUTES: "0" } })).body.job_id);
    expect(JSON.parse(gcDry.job.result!)).toMatchObject({ dry_run: true, deleted: 1, blobs: 3 });
    expect(await blobCount()).toBe(3);
    const doomed = (await env.BACKUPS.head(await storedBlobKey(await sha256Hex(bytes(1000, 2)))))!;
    expect(doomed.size).toBeGreaterThan(1000); // the encrypted blob: age's header and tags on top of the 1000 bytes
    const gc = await drive((await api("POST", "/storage/gc", { body: { grace_minutes: 0 }, env: { GC_GRACE_MINUTES: "0" } })).body.job_id);
    expect(JSON.parse(gc.job.result!)).toMatchObject({ deleted: 1, reclaimed_bytes: doomed.size });
    expect(await env.BACKUPS.head(await storedBlobKey(await sha256Hex(bytes(1000, 2))))).toBeNull();
    expect((await env.BACKUPS.list({ prefix: "tmp/" })).objects).toEqual([]); // its marks are cleaned up

    await data().delete("a.bin");
    const back = await drive((await api("POST", `/backup/storage/${current.snapshot_id}/restore`, { body: {} })).body.job_id);
    expect(back.job.status).toBe("succeeded");
    expect(await sha256Hex(await (await data().get("a.bin"))!.arrayBuffer())).toBe(await sha256Hex(bytes(1000, 1)));
  });

  it("GC keeps young blobs and blobs only the version store references; drops parts of abandoned snapshots", async () => {
    await data().put("v.bin", bytes(500, 9));
    const s = await snapshot();
    // A version row referencing the same bytes, then the snapshot goes away.
    await env.CATALOG.prepare(
      "INSERT INTO object_versions (bucket, key, event_time, action, etag, size, sha256, meta, source, captured_at) VALUES ('astrid-scratch', 'k', ?, 'put', 'e', 500, ?, '{}', 'event', ?)",
    ).bind(daysAgo(1), await sha256Hex(bytes(500, 9)), daysAgo(1)).run();
    await env.CATALOG.prepare("DELETE FROM storage_snapshots").run();
    await env.BACKUPS.delete(snapshotManifestKey(s.snapshot_id)); // its part is now abandoned
    const young = await drive((await api("POST", "/storage/gc", { body: {} })).body.job_id); // default grace: 24 h
    expect(JSON.parse(young.job.result!)).toMatchObject({ deleted: 0, orphan_parts: 0 });
    const gc = await drive((await api("POST", "/storage/gc", { body: { grace_minutes: 0 }, env: { GC_GRACE_MINUTES: "0" } })).body.job_id);
    expect(JSON.parse(gc.job.result!)).toMatchObject({ deleted: 0, orphan_parts: 1 });
    expect(await env.BACKUPS.head(await storedBlobKey(await sha256Hex(bytes(500, 9))))).not.toBeNull();
  });

  it("expires versions superseded longer ago than the version retention, never a key's newest", async () => {
    const insert = (key: string, at: string, action: string, sha: string | null) =>
      env.CATALOG.prepare(
        "INSERT INTO object_versions (bucket, key, event_time, action, etag, size, sha256, meta, source, captured_at) VALUES ('astrid-scratch', ?, ?, ?, ?, 1, ?, '{}', 'event', ?)",
      ).bind(key, at, action, `e-${at}`, sha, at).run();
    await insert("k1", daysAgo(200), "put", "a".repeat(64));
    await insert("k1", daysAgo(150), "put", "b".repeat(64)); // supersedes the first 150 days ago
    await insert("k1", daysAgo(10), "put", "c".repeat(64)); // supersedes the second only 10 days ago
    await insert("k2", daysAgo(300), "put", "d".repeat(64)); // old but still the newest of its key
    const out = await api("POST", "/backup/storage/cleanup", { body: { version_retention_days: 90 } });
    expect(out.body.removed_versions).toBe(1);
    const left = await env.CATALOG.prepare("SELECT key, sha256 FROM object_versions ORDER BY key, event_time").all();
    expect(left.results.map((r) => `${r.key}:${String(r.sha256)[0]}`)).toEqual(["k1:b", "k1:c", "k2:d"]);
  });

  it("a lifecycle rule's version_expire_days governs its prefix; the default the rest", async () => {
    const insert = (key: string, at: string) =>
      env.CATALOG.prepare(
        "INSERT INTO object_versions (bucket, key, event_time, action, etag, size, sha256, meta, source, captured_at) VALUES ('astrid-scratch', ?, ?, 'put', ?, 1, ?, '{}', 'event', ?)",
      ).bind(key, at, `e-${key}-${at}`, "a".repeat(64), at).run();
    for (const key of ["hot/a", "cold/a"]) {
      await insert(key, daysAgo(60));
      await insert(key, daysAgo(40)); // supersedes the first 40 days ago
    }
    await saveLifecycleRules(env.BACKUPS, {
      bucket: "astrid-scratch", updated_at: new Date().toISOString(), updated_by: "test",
      rules: parseLifecycleRules([{ id: "hot versions", prefix: "hot/", version_expire_days: 30 }]),
    });
    const out = await api("POST", "/backup/storage/cleanup", { body: {} }); // default 90 days
    expect(out.body.removed_versions).toBe(1);
    const left = await env.CATALOG.prepare("SELECT key FROM object_versions ORDER BY key, event_time").all();
    expect(left.results.map((r) => r.key)).toEqual(["cold/a", "cold/a", "hot/a"]);
  });

  it("garbage collection waits while a snapshot is between two of its steps", async () => {
    await seedData();
    const res = await api("POST", "/backup/storage", { body: { bucket: "astrid-data" }, env: SMALL_PAGES });
    const snapshotJob = res.body.jobs[0].job_id;
    // One step of the snapshot, then GC asks to run.
    await worker.queue(createMessageBatch("astrid-backup-jobs", [{ id: "s1", timestamp: new Date(), attempts: 1, body: { job_id: snapshotJob } }]) as MessageBatch<unknown>,
      testEnv({ JOBS: recordingQueue([]), ...SMALL_PAGES }));
    const gcJob = (await api("POST", "/storage/gc", { body: { grace_minutes: 0 }, env: { GC_GRACE_MINUTES: "0" } })).body.job_id;
    const sent: unknown[] = [];
    const batch = createMessageBatch("astrid-backup-jobs", [{ id: "g1", timestamp: new Date(), attempts: 1, body: { job_id: gcJob } }]);
    await worker.queue(batch as MessageBatch<unknown>, testEnv({ JOBS: recordingQueue(sent as never[]) }));
    expect((await env.CATALOG.prepare("SELECT status FROM jobs WHERE id = ?").bind(gcJob).first("status"))).toBe("queued");
    expect(sent).toEqual([{ job_id: gcJob }]); // re-sent to wait, not run
  });
});
