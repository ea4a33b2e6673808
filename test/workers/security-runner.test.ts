// Issue #12, "a compromised runner or a leaked job token": the attacker holds
// one job's token (it can post that job's completion) and tries to mark other
// backups corrupt, forge restore records, or get every backup deleted by
// retention. Each attempt must fail; real damage must still be found and
// spread to the backups that share it, as the Worker itself works it out.
import { env, SELF } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import type { BackupRow, JobRow } from "../../workers/catalog/schema.ts";
import { claimedChunkIds } from "../../workers/repository/damage.ts";
import { mintJobToken, type JobGrant } from "../../workers/repository/job-token.ts";
import { manifestKey, packKey, type DatabaseManifest } from "../../workers/shared/format.ts";
import type { JobCompletion } from "../../workers/shared/protocol.ts";
import type { DatabaseVerifyResult as VerifyResult } from "../../workers/database/protocol.ts";
import { allBackupRows, api, isoDaysAgo, isoSecondsAgo, jobRow, resetState, seedBackup, seedJob, sha256Hex, validManifest, VIEWER } from "./helpers.ts";

beforeEach(resetState);

async function complete(job: JobRow, scope: JobGrant["scope"], completion: JobCompletion) {
  const token = await mintJobToken(env.JOB_TOKEN_SECRET, { job_id: job.id, scope, backup_id: job.backup_id ?? "-", expires: Math.floor(Date.now() / 1000) + 3600 });
  const res = await SELF.fetch(`https://backup.test/repo/v1/jobs/${job.id}/complete`, {
    method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify(completion),
  });
  return { status: res.status, body: await res.json<{ status: string }>() };
}

/** Parameters as the kind's route would store them. */
const paramsFor = (kind: JobRow["kind"], backup_id: string | null) =>
  kind.endsWith(".verify") ? { backup_id, depth: "quick" }
    : kind === "database.restore" ? { backup_id, target_label: "astrid", target_database: "astrid", replace: false }
      : kind === "database.backup" ? { backup_id, database: "astrid", type: "full" }
        : { backup_id };
const runningJob = (kind: JobRow["kind"], backup_id: string | null, p: Partial<JobRow> = {}) =>
  seedJob({ kind, status: "running", attempts: 1, backup_id, started_at: isoSecondsAgo(30), heartbeat_at: isoSecondsAgo(1), params: paramsFor(kind, backup_id), ...p });

/** Two chunk files in one pack; backups name the chunks they use. Returns the pack's bytes and ids. */
async function sharedPack() {
  const files = [new TextEncoder().encode("chunk file one ".repeat(40)), new TextEncoder().encode("chunk file two ".repeat(50))];
  const pack = new Uint8Array(files[0]!.length + files[1]!.length);
  pack.set(files[0]!, 0);
  pack.set(files[1]!, files[0]!.length);
  const packId = await sha256Hex(pack);
  await env.BACKUPS.put(packKey("packs/", packId), pack);
  const refs = await Promise.all(files.map(async (f, i) => ({
    id: String(i + 1).repeat(64), plain_size: 100, pack: packId, offset: i === 0 ? 0 : files[0]!.length, stored_size: f.length, stored_sha256: await sha256Hex(f),
  })));
  return { pack, packId, refs };
}

/** A listed backup whose manifest (in R2) uses the given chunk refs. */
async function backupUsing(refs: DatabaseManifest["chunks"], daysAgo: number): Promise<BackupRow> {
  const row = await seedBackup({ created_at: isoDaysAgo(daysAgo), chunk_count: refs.length });
  const m = validManifest(row.id, { chunks: refs.length });
  m.chunks = refs;
  await env.BACKUPS.put(manifestKey(row.id), JSON.stringify(m));
  return row;
}

const failedVerify = (backup_id: string, problems: string[], extra: Partial<VerifyResult> = {}): JobCompletion => ({
  status: "failed", error: { code: "integrity_error", message: "damage" },
  result: { kind: "database.verify", backup_id, depth: "quick", ok: false, checked_chunks: 2, problems, duration_ms: 5, ...extra },
});

const statuses = async () => Object.fromEntries((await allBackupRows()).map((b) => [b.id, b.status]));

describe("a completion speaks only for its own job", () => {
  it("a verify job's token cannot mark another backup corrupt, whatever affected_backups says", async () => {
    const { refs } = await sharedPack();
    const a = await backupUsing(refs, 3);
    const b = await backupUsing(refs, 2);
    const c = await backupUsing([refs[1]!], 1);
    const job = await runningJob("database.verify", a.id);
    const all = [a.id, b.id, c.id];

    // Names another backup: refused as a whole, nothing recorded.
    const res = await complete(job, "read", failedVerify(b.id, [`chunk #0 ${refs[0]!.id}: stored SHA-256 differs`], { affected_backups: all }));
    expect(res.body.status).toBe("failed");
    expect(await jobRow(job.id)).toMatchObject({ status: "failed", error_code: "result_mismatch", result: null });
    expect(await statuses()).toEqual({ [a.id]: "completed", [b.id]: "completed", [c.id]: "completed" });

    // Its own backup, claiming damage to a chunk that is intact and listing every backup as affected:
    // the claim concerns only its own backup; the Worker finds the chunk intact, so no other backup is touched.
    const job2 = await runningJob("database.verify", a.id);
    await complete(job2, "read", failedVerify(a.id, [`chunk #0 ${refs[0]!.id}: stored SHA-256 differs`], { affected_backups: all }));
    expect(await statuses()).toEqual({ [a.id]: "corrupt", [b.id]: "completed", [c.id]: "completed" });
    expect(JSON.parse((await jobRow(job2.id))!.result!).affected_backups).toEqual([]);
  });

  it("real damage still spreads to every backup that shares the chunk, found by the Worker from the manifests", async () => {
    const { pack, packId, refs } = await sharedPack();
    const a = await backupUsing(refs, 3);
    const b = await backupUsing([refs[0]!], 2); // shares the damaged chunk
    const c = await backupUsing([refs[1]!], 1); // does not
    const tampered = pack.slice();
    tampered[5] = tampered[5]! ^ 0xff;
    await env.BACKUPS.put(packKey("packs/", packId), tampered);
    const job = await runningJob("database.verify", a.id);
    // The runner names no other backup; the Worker finds b itself.
    await complete(job, "read", failedVerify(a.id, [`chunk #0 ${refs[0]!.id}: stored SHA-256 differs`], { affected_backups: [] }));
    expect(await statuses()).toEqual({ [a.id]: "corrupt", [b.id]: "corrupt", [c.id]: "completed" });
    expect(JSON.parse((await jobRow(job.id))!.result!).affected_backups).toEqual([a.id, b.id].sort());
  });

  it("jobs of other kinds cannot post verify or restore results", async () => {
    const target = await backupUsing((await sharedPack()).refs, 1);
    const gc = await runningJob("repository.gc", null);
    await complete(gc, "gc", failedVerify(target.id, [], { affected_backups: [target.id] }));
    expect(await jobRow(gc.id)).toMatchObject({ status: "failed", error_code: "result_mismatch" });
    const backupJob = await runningJob("database.backup", "db-astrid-20261101T020000Z-zzzzzz");
    await complete(backupJob, "write", {
      status: "succeeded", result: { kind: "database.restore", backup_id: target.id, target_database: "x", bytes: 1, duration_ms: 1 },
    });
    expect(await jobRow(backupJob.id)).toMatchObject({ status: "failed", error_code: "result_mismatch" });
    expect((await allBackupRows())[0]).toMatchObject({ status: "completed", last_restore_ms: null, verify_status: null });
  });

  it("restore records cannot be forged for other backups, nor faster than the Worker saw the job run", async () => {
    const { refs } = await sharedPack();
    const mine = await backupUsing(refs, 2);
    const other = await backupUsing(refs, 1);
    const job = await runningJob("database.restore", mine.id, { started_at: isoSecondsAgo(30) });
    await complete(job, "read", { status: "succeeded", result: { kind: "database.restore", backup_id: other.id, target_database: "x", bytes: 1, duration_ms: 1 } });
    expect(await jobRow(job.id)).toMatchObject({ status: "failed", error_code: "result_mismatch" });
    const job2 = await runningJob("database.restore", mine.id, { started_at: isoSecondsAgo(30) });
    await complete(job2, "read", { status: "succeeded", result: { kind: "database.restore", backup_id: mine.id, target_database: "x", bytes: 1, duration_ms: 1 } });
    const rows = Object.fromEntries((await allBackupRows()).map((b) => [b.id, b.last_restore_ms]));
    expect(rows[other.id]).toBeNull();
    expect(rows[mine.id]).toBeGreaterThanOrEqual(30_000);
  });
});

describe("corrupt is not forever, and retention keeps the newest whatever the statuses", () => {
  it("a later passing full verify clears corrupt; a passing quick verify does not", async () => {
    const b = await backupUsing((await sharedPack()).refs, 1);
    await complete(await runningJob("database.verify", b.id), "read", failedVerify(b.id, ["the dump's SHA-256 differs"]));
    expect((await statuses())[b.id]).toBe("corrupt");
    const ok = (depth: "quick" | "full"): JobCompletion => ({
      status: "succeeded", result: { kind: "database.verify", backup_id: b.id, depth, ok: true, checked_chunks: 2, problems: [], duration_ms: 5 },
    });
    await complete(await runningJob("database.verify", b.id), "read", ok("quick"));
    expect((await statuses())[b.id]).toBe("corrupt");
    await complete(await runningJob("database.verify", b.id), "read", ok("full"));
    expect((await allBackupRows())[0]).toMatchObject({ status: "completed", verify_status: "passed", verify_depth: "full" });
    expect((await api("POST", `/backups/${b.id}/restore`, { body: { target: "postgres://postgres@127.0.0.1/x" } })).status).toBe(202);
  });

  it("every backup forged corrupt: cleanup with the shortest policy still keeps the newest", async () => {
    const { refs } = await sharedPack();
    const bs = [await backupUsing(refs, 90), await backupUsing(refs, 60), await backupUsing(refs, 40)];
    for (const b of bs) await complete(await runningJob("database.verify", b.id), "read", failedVerify(b.id, ["forged"]));
    expect(Object.values(await statuses())).toEqual(["corrupt", "corrupt", "corrupt"]);
    const res = await api("POST", "/backup/database/cleanup", { body: { retention_days: 1, keep_last: 0 } });
    expect(res.status, res.text).toBe(200);
    expect((await allBackupRows()).map((b) => b.id)).toEqual([bs[2]!.id]);
    expect(await env.BACKUPS.head(manifestKey(bs[2]!.id))).not.toBeNull();
  });

  it("claimedChunkIds reads only well-formed chunk lines", () => {
    expect([...claimedChunkIds([`chunk #3 ${"a".repeat(64)}: x`, "chunk zz", `chunk ${"b".repeat(64)}`])]).toEqual(["a".repeat(64)]);
  });
});

describe("what a runner reports is scrubbed before viewers see it", () => {
  it("configured secret values and URL userinfo never reach jobs.error_message", async () => {
    const job = await runningJob("database.backup", "db-astrid-20261101T020000Z-yyyyyy");
    await complete(job, "write", {
      status: "failed",
      error: { code: "boom", message: `failed: ${env.DATABASE_URL} / s3cret-pw / https://eve:pw12345@mlflow.example/x / ${env.CHUNK_ID_KEY}` },
    });
    const row = await jobRow(job.id);
    expect(row!.error_code).toBe("boom");
    for (const leak of ["s3cret-pw", "eve:pw12345", String(env.CHUNK_ID_KEY)]) expect(row!.error_message).not.toContain(leak);
    expect((await api("GET", `/jobs/${job.id}`, { token: VIEWER })).text).not.toContain("s3cret-pw");
  });
});
