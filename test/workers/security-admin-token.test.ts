// Issue #12, "a leaked ADMIN_TOKEN": the attacker holds a valid admin token and
// tries every route that could make backups disappear: remove or weaken the
// Bucket Locks, have R2 itself expire the backup bucket through a lifecycle
// rule, point the storage ops routes at a bucket this system does not manage,
// and run retention with the shortest policy. Every attempt must fail (or do
// nothing), and afterwards every backup must still be restorable: its row
// completed, its manifest and every pack it names in R2 with the right bytes,
// and a restore accepted. The Cloudflare account API is the in-memory stand-in.
import { env } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { DatabaseManifest, manifestKey, packKey } from "../../workers/shared/format.ts";
import { weakenings, diffLocks, type LockRule } from "../../workers/storage/bucket-lock.ts";
import { allBackupRows, api, auditRows, isoDaysAgo, resetState, seedBackup, sha256Hex, validManifest } from "./helpers.ts";
import { MemoryBucketLockApi } from "./storage-support.ts";

beforeEach(resetState);

const LOCKS: LockRule[] = [
  { id: "manifests", prefix: "manifests/", enabled: true, condition: { type: "Indefinite" } },
  { id: "packs 400d", prefix: "packs/", enabled: true, condition: { type: "Age", max_age_seconds: 400 * 86400 } },
  { id: "archives until", prefix: "archive/", enabled: true, condition: { type: "Date", date: "2036-01-01T00:00:00.000Z" } },
];

/** A backup with a real pack and a manifest naming it, in R2 and in the catalog. */
async function backupInR2(daysAgo: number, seed: number) {
  const pack = new TextEncoder().encode(`pack bytes ${seed} `.repeat(100));
  const packId = await sha256Hex(pack);
  const row = await seedBackup({ created_at: isoDaysAgo(daysAgo) });
  const m = validManifest(row.id, { chunks: 1 });
  m.chunks[0] = { ...m.chunks[0]!, pack: packId, offset: 0, stored_size: pack.length, stored_sha256: packId };
  await env.BACKUPS.put(packKey("packs/", packId), pack);
  await env.BACKUPS.put(manifestKey(row.id), JSON.stringify(m));
  return row.id;
}

/** Restorable: listed as completed, manifest valid, every pack present with the bytes its name says, and a restore is accepted. */
async function expectRestorable(id: string, lockApi: MemoryBucketLockApi) {
  const row = (await allBackupRows()).find((b) => b.id === id);
  expect(row?.status, id).toBe("completed");
  const manifest = DatabaseManifest.parse(await (await env.BACKUPS.get(manifestKey(id)))!.json());
  for (const c of manifest.chunks) {
    const pack = await env.BACKUPS.get(packKey(manifest.pack_prefix, c.pack));
    expect(pack, `pack ${c.pack} of ${id}`).not.toBeNull();
    expect(await sha256Hex(new Uint8Array(await pack!.arrayBuffer()))).toBe(c.pack);
  }
  const restore = await api("POST", `/backups/${id}/restore`, { body: { target: "postgres://postgres@127.0.0.1/astrid_copy" }, env: { BUCKET_LOCK_API: lockApi } });
  expect(restore.status, restore.text).toBe(202);
}

describe("a leaked admin token cannot weaken the backup bucket's protection", () => {
  it("plays the whole attack; every backup is still restorable afterwards", async () => {
    const lockApi = new MemoryBucketLockApi();
    lockApi.buckets.set("astrid-backups", structuredClone(LOCKS));
    const e = { BUCKET_LOCK_API: lockApi };
    const ids = [await backupInR2(120, 1), await backupInR2(90, 2), await backupInR2(60, 3)];

    // 1. Remove every lock, then each way of weakening one: refused, nothing written (dry run or not).
    const weakened: [string, LockRule[]][] = [
      ["remove all", []],
      ["remove one", LOCKS.slice(1)],
      ["disable", LOCKS.map((r) => (r.id === "manifests" ? { ...r, enabled: false } : r))],
      ["shorten age", LOCKS.map((r) => (r.id === "packs 400d" ? { ...r, condition: { type: "Age", max_age_seconds: 1 } } : r))],
      ["earlier date", LOCKS.map((r) => (r.id === "archives until" ? { ...r, condition: { type: "Date", date: "2026-01-01T00:00:00.000Z" } } : r))],
      ["indefinite to age", LOCKS.map((r) => (r.id === "manifests" ? { ...r, condition: { type: "Age", max_age_seconds: 1 } } : r))],
      ["narrow prefix", LOCKS.map((r) => (r.id === "manifests" ? { ...r, prefix: "manifests/none/" } : r))],
    ];
    for (const [what, rules] of weakened) {
      for (const dry_run of [true, false]) {
        const res = await api("PUT", "/storage/locks", { body: { rules, dry_run }, env: e });
        expect(res.status, `${what}: ${res.text}`).toBe(403);
        expect(res.body.error.code).toBe("lock_weakening_refused");
      }
    }
    expect(lockApi.puts).toBe(0);
    expect(lockApi.buckets.get("astrid-backups")).toEqual(LOCKS);

    // 2. Let R2 delete the backups itself: expiry or transition rules on the backup bucket, by alias or by name.
    for (const bucket of ["BACKUPS", "astrid-backups"]) {
      for (const rule of [{ id: "x", expire_days: 1 }, { id: "x", prefix: "packs/", transition: { days: 1 } }]) {
        const res = await api("PUT", "/storage/lifecycle", { body: { bucket, rules: [rule] }, env: e });
        expect(res.status, res.text).toBe(403);
        expect(res.body.error.code).toBe("protected_bucket");
      }
    }

    // 3. Buckets this system does not manage, even if the account's credentials reach them.
    for (const [method, path, body] of [
      ["PUT", "/storage/lifecycle", { bucket: "someone-elses-bucket", rules: [{ id: "x", expire_days: 1 }] }],
      ["GET", "/storage/lifecycle?bucket=someone-elses-bucket", undefined],
      ["PUT", "/storage/locks", { bucket: "someone-elses-bucket", rules: [] }],
      ["GET", "/storage/locks?bucket=someone-elses-bucket", undefined],
      ["GET", "/storage/cost?bucket=someone-elses-bucket", undefined],
    ] as const) {
      const res = await api(method, path, { body, env: e });
      expect(res.status, `${method} ${path}: ${res.text}`).toBe(404);
      expect(res.body.error.code).toBe("unknown_bucket");
    }

    // 4. Retention with the shortest policy the API takes: the locks keep every manifest.
    const cleanup = await api("POST", "/backup/database/cleanup", {
      body: { retention_days: 1, keep_last: 0, keep_hourly: 0, keep_daily: 0, keep_weekly: 0, keep_monthly: 0 }, env: e,
    });
    expect(cleanup.status, cleanup.text).toBe(200);
    expect(cleanup.body.backup_ids).toEqual([]);

    for (const id of ids) await expectRestorable(id, lockApi);
    const denied = (await auditRows()).filter((a) => a.outcome === "denied");
    expect(denied.map((a) => a.action).sort()).toEqual([...Array(14).fill("storage.locks"), ...Array(4).fill("storage.lifecycle")].sort());
  });

  it("adding and lengthening locks still works, and allowed lifecycle rules on the backup bucket pass validation", async () => {
    const lockApi = new MemoryBucketLockApi();
    lockApi.buckets.set("astrid-backups", structuredClone(LOCKS));
    const stronger = [
      { ...LOCKS[0]!, prefix: "" }, // a shorter prefix covers more
      { ...LOCKS[1]!, condition: { type: "Indefinite" as const } },
      { ...LOCKS[2]!, condition: { type: "Date" as const, date: "2040-01-01T00:00:00.000Z" } },
      { id: "new", prefix: "settings/", enabled: true, condition: { type: "Age" as const, max_age_seconds: 86400 } },
    ];
    const res = await api("PUT", "/storage/locks", { body: { rules: stronger }, env: { BUCKET_LOCK_API: lockApi } });
    expect(res.status, res.text).toBe(200);
    expect(res.body.applied).toBe(true);
    expect(lockApi.buckets.get("astrid-backups")).toHaveLength(4);
    // Only abort_multipart_days may go to the backup bucket: it passes the guard and then needs R2's S3 settings.
    const abort = await api("PUT", "/storage/lifecycle", { body: { bucket: "BACKUPS", rules: [{ id: "abort", abort_multipart_days: 7 }] } });
    expect(abort.status).toBe(503);
    expect(abort.body.error.code).toBe("not_configured");
  });

  it("weakenings: a rule that was disabled may be removed; every weakening is named", () => {
    const off = { ...LOCKS[0]!, enabled: false };
    expect(weakenings(diffLocks([off], []))).toEqual([]);
    expect(weakenings(diffLocks(LOCKS, []))).toHaveLength(3);
    expect(weakenings(diffLocks([LOCKS[1]!], [{ ...LOCKS[1]!, condition: { type: "Date", date: "2099-01-01T00:00:00.000Z" } }])))
      .toEqual(['rule "packs 400d": Age -> Date is not comparable']);
  });
});
