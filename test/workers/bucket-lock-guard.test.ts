// Bucket Locks on the backup bucket are respected by everything that deletes
// from it: database retention, storage retention, storage GC and the pack
// deletions of repository GC skip locked objects (and say so) instead of
// failing on R2's refusal. The Cloudflare account API is the in-memory
// stand-in (it cannot run here), bound as BUCKET_LOCK_API.
import { createExecutionContext, env } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import worker from "../../workers/index.ts";
import { mintJobToken } from "../../workers/repository/job-token.ts";
import { snapshotManifestKey } from "../../workers/shared/format.ts";
import type { LockRule } from "../../workers/storage/bucket-lock.ts";
import { allBackupRows, api, isoDaysAgo, resetState, seedBackup, seedJob, testEnv } from "./helpers.ts";
import { bytes, data, drive, MemoryBucketLockApi, resetStorage, sha256Hex, storedBlobKey } from "./storage-support.ts";

beforeEach(async () => {
  await resetState();
  await resetStorage();
});

function locks(rules: Omit<LockRule, "enabled">[]) {
  const mem = new MemoryBucketLockApi();
  mem.buckets.set("astrid-backups", rules.map((r) => ({ enabled: true, ...r })));
  return { BUCKET_LOCK_API: mem };
}

const FOREVER = (prefix: string) => ({ id: `lock ${prefix}`, prefix, condition: { type: "Indefinite" as const } });

describe("Bucket Locks", () => {
  it("database retention keeps a backup whose manifest is locked, and says why", async () => {
    const old = await seedBackup({ created_at: isoDaysAgo(90) });
    await seedBackup({ created_at: isoDaysAgo(1) });
    const res = await api("POST", "/backup/database/cleanup", { body: {}, env: locks([FOREVER("manifests/database/")]) });
    expect(res.status, res.text).toBe(200);
    expect(res.body.backup_ids).toEqual([]);
    expect(res.body.kept.find((k: { backup_id: string }) => k.backup_id === old.id).reasons).toContain("bucket_lock");
    expect((await allBackupRows()).map((b) => b.id)).toContain(old.id);
    // Without the lock the same request removes it.
    expect((await api("POST", "/backup/database/cleanup", { body: {} })).body.backup_ids).toEqual([old.id]);
  });

  it("storage retention and storage GC skip locked manifests and blobs", async () => {
    await data().put("a.bin", bytes(100, 1));
    const first = await api("POST", "/backup/storage", { body: { bucket: "astrid-data" } });
    await drive(first.body.jobs[0].job_id);
    await data().put("a.bin", bytes(100, 2));
    await drive((await api("POST", "/backup/storage", { body: { bucket: "astrid-data" } })).body.jobs[0].job_id);
    const oldId = first.body.jobs[0].snapshot_id;
    await env.CATALOG.prepare("UPDATE storage_snapshots SET created_at = ? WHERE id = ?").bind(isoDaysAgo(60), oldId).run();

    const lockedEnv = locks([FOREVER("manifests/storage/"), FOREVER("storage/blobs/")]);
    const kept = await api("POST", "/backup/storage/cleanup", { body: {}, env: lockedEnv });
    expect(kept.body).toMatchObject({ removed_snapshots: [], locked_snapshots: 1 });
    const removed = await api("POST", "/backup/storage/cleanup", { body: {} });
    expect(removed.body.removed_snapshots).toEqual([oldId]);
    expect(await env.BACKUPS.head(snapshotManifestKey(oldId))).toBeNull();

    const gcLocked = await drive((await api("POST", "/storage/gc", { body: { grace_minutes: 0 }, env: { GC_GRACE_MINUTES: "0" } })).body.job_id, lockedEnv);
    expect(JSON.parse(gcLocked.job.result!)).toMatchObject({ deleted: 0, kept_locked: 1 });
    expect(await env.BACKUPS.head(await storedBlobKey(await sha256Hex(bytes(100, 1))))).not.toBeNull();
    const gc = await drive((await api("POST", "/storage/gc", { body: { grace_minutes: 0 }, env: { GC_GRACE_MINUTES: "0" } })).body.job_id);
    expect(JSON.parse(gc.job.result!)).toMatchObject({ deleted: 1, kept_locked: 0 });
  });

  it("pack deletions by repository GC skip locked packs and name them", async () => {
    const job = await seedJob({ kind: "repository.gc", status: "running", params: { grace_minutes: 0, dry_run: false }, heartbeat_at: new Date().toISOString() });
    const token = await mintJobToken(env.JOB_TOKEN_SECRET, { job_id: job.id, scope: "gc", backup_id: "-", expires: Math.floor(Date.now() / 1000) + 3600 });
    const keys = [`packs/ab/${"ab".repeat(32)}`, `archive/db-x-20260101T000000Z-abcdef/packs/cd/${"cd".repeat(32)}`];
    for (const k of keys) await env.BACKUPS.put(k, "pack");
    const request = new Request("https://backup.test/repo/v1/delete", {
      method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify({ keys }),
    });
    const res = await worker.fetch(request, testEnv(locks([FOREVER("archive/")])), createExecutionContext());
    expect(await res.json()).toEqual({ deleted: 1, locked: [keys[1]] });
    expect(await env.BACKUPS.head(keys[0]!)).toBeNull();
    expect(await env.BACKUPS.head(keys[1]!)).not.toBeNull();
  });

  it("a lock API that cannot be read stops retention instead of deleting blind", async () => {
    await seedBackup({ created_at: isoDaysAgo(90) });
    await seedBackup({ created_at: isoDaysAgo(1) });
    const broken = { BUCKET_LOCK_API: { get: async () => { throw new Error("api down"); }, put: async () => {} } };
    const res = await api("POST", "/backup/database/cleanup", { body: {}, env: broken });
    expect(res.status).toBe(502);
    expect(res.body.error.code).toBe("bucket_lock_unavailable");
    expect(await allBackupRows()).toHaveLength(2);
  });
});
