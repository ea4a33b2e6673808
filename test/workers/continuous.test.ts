// Continuous archiving on the Worker's side: the timeline (windows and gaps
// with causes), the continuous RPO in the status, the point-in-time restore's
// validation (a target in a gap is refused naming the nearest recoverable
// times), the fencing of the stream's reports (only the holder job counts),
// the yield to an exclusive job, and the watch task.
import { env } from "cloudflare:test";
import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import worker from "../../workers/index.ts";
import { openContinuousCatalog } from "../../workers/catalog/continuous-catalog.ts";
import { mintJobToken } from "../../workers/repository/job-token.ts";
import { claimRules } from "../../workers/jobs/consumer.ts";
import { kinds } from "../../workers/kinds.ts";
import { loadConfig } from "../../workers/config.ts";
import { api, catalog, isoSecondsAgo, recordingQueue, repoCall, resetState, seedBackup, seedJob, sha256Hex, testEnv, VIEWER } from "./helpers.ts";

const store = () => openContinuousCatalog(env.CATALOG);
const VARS = { DATABASE_CONTINUOUS: "astrid" };

beforeEach(async () => {
  await resetState();
  await env.CATALOG.batch(["continuous_streams", "continuous_segments", "continuous_gaps", "dr_alerts"].map((t) => env.CATALOG.prepare(`DELETE FROM ${t}`)));
});

const t0 = Date.parse("2026-11-27T10:00:00Z");
const at = (minutes: number) => new Date(t0 + minutes * 60_000).toISOString();
const streamA = "db-astrid-20261127T100000Z-aaaaaa";
const streamB = "db-astrid-20261127T110000Z-bbbbbb";

/** A stream whose base is recorded and which covers [start, end]. */
async function seedStream(id: string, holder: string, start: string, end: string) {
  await seedBackup({ id, created_at: start, type: "full" });
  await store().createStream({ id, database: "astrid", slot_name: "astrid_astrid", holder_job_id: holder, created_at: start });
  await store().recordBase(id, holder, { consistent_lsn: "0/1000", consistent_at: start, schema: "[]", uncovered: "[]", ddl_captured: true }, new Date(start));
  await env.CATALOG.prepare("UPDATE continuous_streams SET covered_until = ?, last_end_lsn = '0/2000' WHERE id = ?").bind(end, id).run();
}

/** Stream A covers 10:00-10:30, its slot is lost, stream B covers 11:00-11:20 and is live. */
async function twoStreams() {
  await seedStream(streamA, "job-a", at(0), at(30));
  await store().endStream(streamA, "slot_lost", "replication slot astrid_astrid no longer exists", new Date(at(31)));
  await seedStream(streamB, "job-b", at(60), at(80));
}

async function streamToken(jobId: string, streamId: string) {
  await seedJob({
    id: jobId, kind: "continuous.stream", status: "running", attempts: 1, backup_id: streamId, started_at: isoSecondsAgo(30),
    heartbeat_at: isoSecondsAgo(1), params: { database: "astrid", stream_id: streamId, new_stream: false, drop: false },
    concurrency_key: `continuous.stream:${streamId}`,
  });
  return mintJobToken(env.JOB_TOKEN_SECRET, { job_id: jobId, scope: "write", backup_id: streamId, expires: Math.floor(Date.now() / 1000) + 3600 });
}

describe("timeline and status", () => {
  it("lists the recoverable windows and the gap between them with its cause", async () => {
    await twoStreams();
    const { status, body } = await api("GET", "/backup/database/timeline?database=astrid", { token: VIEWER, env: VARS });
    expect(status).toBe(200);
    expect(body.windows.map((w: any) => [w.stream_id, w.start, w.end, w.live])).toEqual([[streamA, at(0), at(30), false], [streamB, at(60), at(80), true]]);
    expect(body.gaps).toEqual([{ from: at(30), until: at(60), cause: "slot_lost", detail: "replication slot astrid_astrid no longer exists" }]);
    expect(body.windows[0].uncovered).toEqual([]);
    expect(body.rpo_seconds).toBeGreaterThan(0);
  });

  it("a window whose base backup retention removed is no longer recoverable", async () => {
    await twoStreams();
    await catalog().deleteBackup(streamA);
    const { body } = await api("GET", "/backup/database/timeline?database=astrid", { token: VIEWER, env: VARS });
    expect(body.windows.map((w: any) => w.stream_id)).toEqual([streamB]);
  });

  it("refuses an unknown database and a missing one", async () => {
    expect((await api("GET", "/backup/database/timeline?database=nope", { token: VIEWER })).status).toBe(400);
    expect((await api("GET", "/backup/database/timeline", { token: VIEWER })).status).toBe(400);
  });

  it("the status carries the continuous RPO in seconds: the age of the newest covered moment", async () => {
    const covered = isoSecondsAgo(42);
    await seedStream(streamB, "job-b", isoSecondsAgo(600), covered);
    const { body } = await api("GET", "/backup/database/status", { token: VIEWER, env: VARS });
    const rpo = body.databases[0].continuous.rpo_seconds;
    expect(rpo).toBeGreaterThanOrEqual(42);
    expect(rpo).toBeLessThan(120);
  });
});

describe("POST /backups/restore-pitr", () => {
  const pitr = (body: unknown) => api("POST", "/backups/restore-pitr", { body, env: VARS });

  it("restores from the window holding the target time", async () => {
    await twoStreams();
    const { status, body } = await pitr({ database: "astrid", target_time: at(70), target: "postgres://u:secret-pw@db.example.org/copy" });
    expect(status, JSON.stringify(body)).toBe(202);
    expect(body.stream_id).toBe(streamB);
    const job = await catalog().getJob(body.job_id);
    expect(job?.kind).toBe("continuous.restore");
    expect(JSON.stringify(job)).not.toContain("secret-pw"); // the target URL is sealed
  });

  it("refuses a time in a gap, naming the nearest recoverable times on both sides", async () => {
    await twoStreams();
    const { status, body } = await pitr({ database: "astrid", target_time: at(45), target: "astrid" });
    expect(status).toBe(422);
    expect(body.error.code).toBe("pitr_target_in_gap");
    expect(body.error.message).toContain(`latest recoverable before: ${at(30)}`);
    expect(body.error.message).toContain(`earliest recoverable after: ${at(60)}`);
  });

  it("refuses a time past the newest durable point, and before all history", async () => {
    await twoStreams();
    const later = await pitr({ database: "astrid", target_time: at(90), target: "astrid" });
    expect([later.status, later.body.error.code]).toEqual([422, "pitr_target_not_covered_yet"]);
    const earlier = await pitr({ database: "astrid", target_time: at(-5), target: "astrid" });
    expect([earlier.status, earlier.body.error.code]).toEqual([422, "pitr_target_in_gap"]);
    await env.CATALOG.prepare("DELETE FROM continuous_streams").run();
    const none = await pitr({ database: "astrid", target_time: at(5), target: "astrid" });
    expect([none.status, none.body.error.code]).toEqual([422, "pitr_no_timeline"]);
  });

  it("validates the request", async () => {
    await twoStreams();
    for (const body of [
      { database: "astrid", target: "astrid" }, // no target point
      { database: "astrid", target_time: at(70), target_lsn: "0/1800", target: "astrid" }, // both
      { database: "astrid", target_time: "yesterday", target: "astrid" },
      { database: "astrid", target_lsn: "16B3748", target: "astrid" },
      { database: "nope", target_time: at(70), target: "astrid" },
      { database: "astrid", target_time: at(70), target: "postgres://h/db?x=1", extra: true },
    ]) {
      const res = await pitr(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.code).toBeTruthy();
    }
    expect((await api("POST", "/backups/restore-pitr", { body: { database: "astrid", target_time: at(70), target: "astrid" }, token: VIEWER })).status).toBe(403);
  });

  it("takes a target LSN inside a window", async () => {
    await twoStreams();
    const { status } = await pitr({ database: "astrid", target_lsn: "0/1800", target: "astrid" });
    expect(status).toBe(202);
  });
});

describe("the stream's reports", () => {
  it("only the job holding the stream is heard: a superseded one is told to stop, its segment is refused", async () => {
    await seedStream(streamB, "job-new", at(60), at(80));
    const old = await streamToken("job-old", streamB);
    const beat = await repoCall(old, "POST", "/continuous/heartbeat", {
      body: JSON.stringify({ stream_id: streamB, covered_until: at(90), slot: { wal_status: "reserved", safe_wal_size: null, retained_bytes: 1, lag_bytes: 0 } }),
      headers: { "content-type": "application/json" },
    });
    expect(beat.status).toBe(200);
    expect(beat.body).toEqual({ stop: "superseded" });
    expect((await store().getStream(streamB))?.covered_until).toBe(at(80)); // unchanged
  });

  it("the holder's heartbeat records the slot's health and covered time, and asks it to yield while GC waits", async () => {
    await seedStream(streamB, "job-holder", at(60), at(80));
    const token = await streamToken("job-holder", streamB);
    const beat = () => repoCall(token, "POST", "/continuous/heartbeat", {
      body: JSON.stringify({ stream_id: streamB, covered_until: at(85), slot: { wal_status: "reserved", safe_wal_size: 5, retained_bytes: 10, lag_bytes: 2 } }),
      headers: { "content-type": "application/json" },
    });
    expect((await beat()).body).toEqual({});
    expect((await store().getStream(streamB))?.covered_until).toBe(at(85));
    await seedJob({ kind: "repository.gc", status: "queued", params: { grace_minutes: 0, dry_run: false } });
    expect((await beat()).body).toEqual({ stop: "yield" });
  });

  it("a stream job's token cannot report another stream, and another kind's token cannot report at all", async () => {
    await seedStream(streamB, "job-holder", at(60), at(80));
    const token = await streamToken("job-holder", streamB);
    const res = await repoCall(token, "POST", "/continuous/heartbeat", {
      body: JSON.stringify({ stream_id: streamA, slot: { wal_status: "reserved", safe_wal_size: null, retained_bytes: null, lag_bytes: null } }),
      headers: { "content-type": "application/json" },
    });
    expect(res.status).toBe(403);
  });

  it("a zombie (the job that held the stream before a takeover) can write neither a segment manifest nor a segment", async () => {
    await seedStream(streamB, "job-new", at(60), at(80));
    // The old job's token still passes (it kept sending heartbeats after the takeover): only the stream fence stops it.
    const zombie = await streamToken("job-old", streamB);
    const timeline = async () => {
      const { windows, gaps } = (await api("GET", "/backup/database/timeline?database=astrid", { token: VIEWER, env: VARS })).body;
      return { windows, gaps };
    };
    const before = await timeline();
    const manifest = JSON.stringify({ zombie: true });
    const own = `manifests/continuous/${streamB}/00000000-job-old.json`;
    const sha = await sha256Hex(manifest);
    const put = (token: string, key: string) => repoCall(token, "PUT", `/objects/${key}`, { body: manifest, headers: { "x-content-sha256": sha, "content-length": String(manifest.length) } });
    const refused = await put(zombie, own);
    expect([refused.status, refused.body.error.code]).toEqual([409, "stream_not_held"]);
    // Nor under the holder's name.
    const forged = await put(zombie, `manifests/continuous/${streamB}/00000000-job-new.json`);
    expect([forged.status, forged.body.error.code]).toEqual([403, "forbidden"]);
    const segment = await repoCall(zombie, "POST", "/continuous/segment", {
      body: JSON.stringify({
        stream_id: streamB, seq: 0, manifest_key: own, start_lsn: "0/2000", end_lsn: "0/3000", confirm_lsn: "0/3010", first_commit_at: at(81),
        last_commit_at: at(82), transactions: 1, covered_until: at(82), logical_bytes: manifest.length, stored_bytes: 10, sha256: sha, schema: [],
      }),
      headers: { "content-type": "application/json" },
    });
    expect([segment.status, segment.body.error.code]).toEqual([409, "stream_not_held"]);
    expect(await env.BACKUPS.head(own)).toBeNull();
    expect(await store().segments(streamB)).toEqual([]);
    expect(await timeline()).toEqual(before);
    // The holder itself may write its manifest.
    const holder = await streamToken("job-new", streamB);
    expect((await put(holder, `manifests/continuous/${streamB}/00000000-job-new.json`)).status).toBe(201);
  });

  it("a segment whose manifest is not in the repository is not recorded", async () => {
    await seedStream(streamB, "job-holder", at(60), at(80));
    const token = await streamToken("job-holder", streamB);
    const res = await repoCall(token, "POST", "/continuous/segment", {
      body: JSON.stringify({
        stream_id: streamB, seq: 0, manifest_key: `manifests/continuous/${streamB}/00000000-job-holder.json`, start_lsn: "0/2000", end_lsn: "0/3000",
        confirm_lsn: "0/3010", first_commit_at: at(81), last_commit_at: at(82), transactions: 1, covered_until: at(82), logical_bytes: 10,
        stored_bytes: 10, sha256: "0".repeat(64), schema: [],
      }),
      headers: { "content-type": "application/json" },
    });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe("manifest_mismatch");
    expect(await store().segments(streamB)).toEqual([]);
  });
});

describe("claims and the watch task", () => {
  it("a stream job is not claimed while garbage collection waits, and does not count against RUNNER_MAX_JOBS", async () => {
    const rules = claimRules(kinds, loadConfig(testEnv(VARS)));
    expect(rules.longRunningKinds).toEqual(["continuous.stream"]);
    expect(rules.runnerKinds).not.toContain("continuous.stream");
    await seedJob({ kind: "repository.gc", status: "queued", params: { grace_minutes: 0, dry_run: false } });
    const stream = await seedJob({ kind: "continuous.stream", status: "queued", params: { database: "astrid", stream_id: streamB, new_stream: true, drop: false } });
    const claim = await catalog().claimJob(stream.id, new Date(), 120, rules);
    expect(claim).toEqual({ waiting: "waiting for garbage collection to run first" });
  });

  it("every minute: starts a stream for a listed database, and none while its job runs", async () => {
    const run = async () => {
      const queued: unknown[] = [];
      const ctx = createExecutionContext();
      await worker.scheduled(createScheduledController({ cron: "* * * * *", scheduledTime: Date.now() }), testEnv({ JOBS: recordingQueue(queued as never[]), ...VARS }), ctx);
      await waitOnExecutionContext(ctx);
      return (await catalog().listJobs({ kind: "continuous.stream", limit: 10 }));
    };
    const first = await run();
    expect(first).toHaveLength(1);
    expect(JSON.parse(first[0]!.params)).toMatchObject({ database: "astrid", new_stream: true });
    await env.CATALOG.prepare("UPDATE jobs SET status = 'running', heartbeat_at = ? WHERE id = ?").bind(new Date().toISOString(), first[0]!.id).run();
    expect(await run()).toHaveLength(1);
  });

  it("re-base: a new stream starts beside an old one, takes over once it covers past its base, and the two make one window with no gap", async () => {
    const REBASE = { ...VARS, CONTINUOUS_REBASE_HOURS: "1" };
    const watch = async () => {
      const ctx = createExecutionContext();
      await worker.scheduled(createScheduledController({ cron: "* * * * *", scheduledTime: Date.now() }), testEnv({ JOBS: recordingQueue([]), ...REBASE }), ctx);
      await waitOnExecutionContext(ctx);
    };
    const old = isoSecondsAgo(2 * 3600);
    await seedStream(streamA, "job-a", old, isoSecondsAgo(60));
    const oldToken = await streamToken("job-a", streamA);
    await watch();
    await watch(); // the new stream's job is queued: no second one
    const started = (await catalog().listJobs({ kind: "continuous.stream", limit: 10 })).filter((j) => j.id !== "job-a");
    expect(started).toHaveLength(1);
    const next = JSON.parse(started[0]!.params);
    expect(next).toMatchObject({ database: "astrid", new_stream: true });
    const successor = await store().getStream(next.stream_id);
    expect(successor?.slot_name).toMatch(/^astrid_astrid_[a-z0-9]{6}$/); // a slot of its own
    expect(started[0]!.concurrency_key).not.toBe(`continuous.stream:${streamA}`); // runs beside the old stream's job

    const beat = async () => (await repoCall(oldToken, "POST", "/continuous/heartbeat", {
      body: JSON.stringify({ stream_id: streamA, slot: { wal_status: "reserved", safe_wal_size: null, retained_bytes: 1, lag_bytes: 0 } }),
      headers: { "content-type": "application/json" },
    })).body;
    expect(await beat()).toEqual({}); // the successor has no base yet: the old stream goes on
    const base = isoSecondsAgo(120);
    await seedBackup({ id: next.stream_id, created_at: base, type: "full" });
    await store().recordBase(next.stream_id, started[0]!.id, { consistent_lsn: "0/1800", consistent_at: base, schema: "[]", uncovered: "[]", ddl_captured: true }, new Date());
    expect(await beat()).toEqual({}); // a base, but nothing durable past it yet
    const covered = isoSecondsAgo(30);
    await env.CATALOG.prepare("UPDATE continuous_streams SET covered_until = ?, next_seq = 1, last_end_lsn = '0/2400' WHERE id = ?").bind(covered, next.stream_id).run();
    expect(await beat()).toEqual({ stop: "rebased" });

    await store().endStream(streamA, "rebased", "a newer stream has taken over", new Date());
    const { body } = await api("GET", "/backup/database/timeline?database=astrid", { token: VIEWER, env: VARS });
    expect(body.gaps).toEqual([]);
    expect(body.windows).toHaveLength(1);
    expect(body.windows[0]).toMatchObject({ start: old, end: covered, stream_id: next.stream_id, live: true });
    expect(body.windows[0].streams.map((w: any) => w.stream_id)).toEqual([streamA, next.stream_id]);
    // A target both streams cover restores from the newer base (the shorter replay); an earlier one from the old base.
    const pitr = (target_time: string) => api("POST", "/backups/restore-pitr", { body: { database: "astrid", target_time, target: "astrid" }, env: VARS });
    expect((await pitr(isoSecondsAgo(90))).body.stream_id).toBe(next.stream_id);
    expect((await pitr(isoSecondsAgo(3600))).body.stream_id).toBe(streamA);

    // Retention takes the old base: the window now starts at the new base, and the old stream's segments go.
    await env.BACKUPS.put(`manifests/continuous/${streamA}/00000000-job-a.json`, "{}");
    await env.CATALOG.prepare("INSERT INTO continuous_segments (stream_id, seq, manifest_key, start_lsn, end_lsn, transactions, logical_bytes, stored_bytes, created_at) VALUES (?, 0, ?, '0/1', '0/2', 1, 1, 1, ?)")
      .bind(streamA, `manifests/continuous/${streamA}/00000000-job-a.json`, old).run();
    await catalog().deleteBackup(streamA);
    const after = (await api("GET", "/backup/database/timeline?database=astrid", { token: VIEWER, env: VARS })).body;
    expect(after.windows.map((w: any) => [w.start, w.streams.length])).toEqual([[base, 1]]);
    await watch();
    expect(await store().getStream(streamA)).toBeUndefined();
    expect(await env.BACKUPS.head(`manifests/continuous/${streamA}/00000000-job-a.json`)).toBeNull();
  });

  it("a stream that ends before the next stream's base leaves a gap up to that base, closed at once", async () => {
    await seedStream(streamA, "job-a", at(0), at(30));
    await seedStream(streamB, "job-b", at(40), at(50));
    await store().endStream(streamA, "slot_lost", "gone", new Date(at(45)));
    expect((await store().gaps("astrid")).map((g) => [g.from_time, g.until_time, g.cause])).toEqual([[at(30), at(40), "slot_lost"]]);
  });

  it("retention: an ended stream whose base is gone loses its segments; a live one keeps them", async () => {
    await twoStreams();
    for (const id of [streamA, streamB]) {
      await env.BACKUPS.put(`manifests/continuous/${id}/00000000-job-x.json`, "{}");
      await env.CATALOG.prepare("INSERT INTO continuous_segments (stream_id, seq, manifest_key, start_lsn, end_lsn, transactions, logical_bytes, stored_bytes, created_at) VALUES (?, 0, ?, '0/1', '0/2', 1, 1, 1, ?)")
        .bind(id, `manifests/continuous/${id}/00000000-job-x.json`, at(0)).run();
    }
    await catalog().deleteBackup(streamA);
    await catalog().deleteBackup(streamB);
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ cron: "* * * * *", scheduledTime: Date.now() }), testEnv({ JOBS: recordingQueue([]), ...VARS }), ctx);
    await waitOnExecutionContext(ctx);
    expect(await store().getStream(streamA)).toBeUndefined();
    expect(await env.BACKUPS.head(`manifests/continuous/${streamA}/00000000-job-x.json`)).toBeNull();
    expect(await store().segments(streamB)).toHaveLength(1);
    expect(await env.BACKUPS.head(`manifests/continuous/${streamB}/00000000-job-x.json`)).not.toBeNull();
  });

  it("retention keeps the base of a live stream, however old, and lets an ended stream's go", async () => {
    await twoStreams();
    // Both bases years old; a newer full exists, so only the live-stream rule can keep stream B's base.
    await env.CATALOG.prepare("UPDATE backups SET created_at = ?, finished_at = ?").bind("2020-01-01T00:00:00Z", "2020-01-01T00:00:00Z").run();
    await seedBackup({ id: "db-astrid-20261127T120000Z-cccccc", created_at: new Date().toISOString(), type: "full" }); // the newest stays anyway
    const { body } = await api("POST", "/backup/database/cleanup", { body: { retention_days: 1 }, env: VARS });
    expect(body.backup_ids).toEqual([streamA]);
    expect(await catalog().getBackup(streamB)).toBeDefined();
  });

  it("a database taken out of DATABASE_CONTINUOUS gets a job that drops its slot", async () => {
    await seedStream(streamB, "job-old", at(60), at(80));
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ cron: "* * * * *", scheduledTime: Date.now() }), testEnv({ JOBS: recordingQueue([]) }), ctx);
    await waitOnExecutionContext(ctx);
    const [job] = await catalog().listJobs({ kind: "continuous.stream", limit: 10 });
    expect(JSON.parse(job!.params)).toEqual({ database: "astrid", stream_id: streamB, new_stream: false, drop: true });
  });

  it("a slot whose WAL is no longer reserved raises the continuous_slot alert; a stale stream raises continuous_rpo", async () => {
    await seedStream(streamB, "job-b", at(60), at(80)); // covered_until long ago: RPO far past the limit
    await env.CATALOG.prepare("UPDATE continuous_streams SET slot_health = ? WHERE id = ?")
      .bind(JSON.stringify({ wal_status: "unreserved", safe_wal_size: -1024, retained_bytes: 5e9, lag_bytes: 5e9 }), streamB).run();
    await seedJob({ kind: "continuous.stream", status: "running", heartbeat_at: new Date().toISOString(), concurrency_key: `continuous.stream:${streamB}`, params: { database: "astrid", stream_id: streamB, new_stream: false, drop: false } });
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ cron: "* * * * *", scheduledTime: Date.now() }), testEnv({ JOBS: recordingQueue([]), ...VARS }), ctx);
    await waitOnExecutionContext(ctx);
    const { body } = await api("GET", "/dr/alerts", { token: VIEWER, env: VARS });
    const firing = body.alerts.filter((a: any) => a.status === "firing").map((a: any) => a.kind).sort();
    expect(firing).toEqual(["continuous_rpo", "continuous_slot"]);
  });

  it("DATABASE_CONTINUOUS must name configured databases", async () => {
    expect(() => loadConfig(testEnv({ DATABASE_CONTINUOUS: "astrid,ghost" }))).toThrow(/DATABASE_CONTINUOUS: "ghost"/);
  });
});
