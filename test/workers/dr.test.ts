// Disaster recovery in the Worker: starting drills (route and weekly cron),
// judging a drill's completion, settling a drill whose runner was lost,
// alert state (fire once, resolve once; a dead webhook never fails a job),
// /dr/status, /dr/rto and the Prometheus /metrics text.
import { createExecutionContext, createScheduledController, env, waitOnExecutionContext } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import worker from "../../workers/index.ts";
import { completeJob } from "../../workers/jobs/complete.ts";
import { kinds } from "../../workers/kinds.ts";
import { openDrStore } from "../../workers/dr/runs.ts";
import { setAlert } from "../../workers/dr/alerts.ts";
import { buildDrillDispatch } from "../../workers/dr/dispatch.ts";
import { rtoState } from "../../workers/dr/status.ts";
import { evaluateAlerts } from "../../workers/dr/tasks.ts";
import { openContinuousCatalog } from "../../workers/catalog/continuous-catalog.ts";
import type { DrillResult } from "../../workers/dr/protocol.ts";
import { api, catalog, catalogDump, ctxOf, DATABASE_URL_PASSWORD, isoSecondsAgo, jobRow, recordingQueue, resetState, seedBackup, seedJob, testEnv, VIEWER } from "./helpers.ts";

beforeEach(async () => {
  await resetState();
  await env.CATALOG.batch(["dr_runs", "dr_alerts", "continuous_streams"].map((t) => env.CATALOG.prepare(`DELETE FROM ${t}`)));
});

const ONLY_DATABASE = { DR_DOMAINS: "database" };
const CLAIM = { exclusiveKinds: [], runnerKinds: [], runnerMaxJobs: 100 };
/** A runner's report, through the machinery, under the given variables. */
const report = (jobId: string, completion: Parameters<typeof completeJob>[3], vars: Record<string, unknown> = ONLY_DATABASE) =>
  completeJob(ctxOf(testEnv(vars)), kinds, jobId, completion);

async function startDrill(vars: Record<string, unknown> = ONLY_DATABASE) {
  const res = await api("POST", "/backup/test-recovery", { body: {}, env: vars });
  expect(res.status, res.text).toBe(202);
  // The consumer would claim it; the tests stand in for it.
  await catalog().claimJob(res.body.job_id, new Date(), 120, CLAIM);
  return res.body;
}

const drillResult = (over: Partial<DrillResult["domains"][number]> = {}): DrillResult => ({
  kind: "dr.drill", swept: [], duration_ms: 1200,
  domains: [{
    domain: "database", source: "astrid", restore_point: "x", point_created_at: isoSecondsAgo(600), passed: true,
    restore_ms: 1000, validate_ms: 200, bytes: 50_000_000, problems: [], ...over,
  }],
});

describe("starting a drill", () => {
  it("POST /backup/test-recovery picks the newest verified backup, queues a dr.drill job and records a running run", async () => {
    await seedBackup({ created_at: isoSecondsAgo(3600), verify_status: "passed" });
    const newest = await seedBackup({ created_at: isoSecondsAgo(60), verify_status: "passed" });
    await seedBackup({ created_at: isoSecondsAgo(10) }); // unverified: not a drill's restore point
    const res = await api("POST", "/backup/test-recovery", { body: {}, env: ONLY_DATABASE });
    expect(res.status).toBe(202);
    expect(res.body.restore_points.databases).toEqual([{ database: "astrid", backup_id: newest.id }]);
    expect((await jobRow(res.body.job_id))).toMatchObject({ kind: "dr.drill", status: "queued" });
    const run = (await api("GET", `/dr/runs/${res.body.job_id}`, { token: VIEWER })).body;
    expect(run).toMatchObject({ run_id: res.body.job_id, kind: "drill", trigger: "manual", status: "running" });
  });

  it("DR_RESTORE_POINT=random picks a verified backup within DR_RANDOM_WINDOW_DAYS", async () => {
    const inWindow = new Set<string>();
    for (let d = 1; d <= 3; d++) inWindow.add((await seedBackup({ created_at: isoSecondsAgo(d * 86_400), verify_status: "passed" })).id);
    await seedBackup({ created_at: isoSecondsAgo(20 * 86_400), verify_status: "passed" }); // outside the window
    await seedBackup({ created_at: isoSecondsAgo(3600) }); // unverified
    const vars = { ...ONLY_DATABASE, DR_RESTORE_POINT: "random", DR_RANDOM_WINDOW_DAYS: "5" };
    const picked = new Set<string>();
    for (let i = 0; i < 12; i++) picked.add((await api("POST", "/backup/test-recovery", { body: {}, env: vars })).body.restore_points.databases[0].backup_id);
    for (const id of picked) expect(inWindow.has(id)).toBe(true);
    expect(picked.size).toBeGreaterThan(1); // 12 draws from 3: one value only has probability 3 * (1/3)^12
  });

  it("keeps secrets out of the catalog: job params and runs name backups, never a database URL", async () => {
    await seedBackup({ created_at: isoSecondsAgo(600), verify_status: "passed" });
    const { job_id } = await startDrill({ DR_DOMAINS: "database", DR_DATABASE_URL: "postgres://drill:drill-pw-secret@10.0.0.9/postgres" });
    await report(job_id, { status: "succeeded", result: drillResult() });
    const dump = JSON.stringify([
      await catalogDump(), (await env.CATALOG.prepare("SELECT * FROM dr_runs").all()).results, (await env.CATALOG.prepare("SELECT * FROM dr_alerts").all()).results,
    ]);
    expect(dump).toContain(job_id);
    expect(dump).not.toContain(DATABASE_URL_PASSWORD);
    expect(dump).not.toContain("drill-pw-secret");
  });

  it("a domain with nothing to restore is a failure of the drill, not a skip", async () => {
    const { job_id, missing } = await startDrill({ DR_DOMAINS: "database,storage" });
    expect([...new Set(missing.map((m: any) => m.domain))].sort()).toEqual(["database", "storage"]);
    await report(job_id, { status: "succeeded", result: { kind: "dr.drill", domains: [], swept: [], duration_ms: 1 } }, { DR_DOMAINS: "database,storage" });
    const run = (await api("GET", `/dr/runs/${job_id}`)).body;
    expect(run.status).toBe("failed");
    expect(run.errors.join("\n")).toContain("no verified backup of astrid");
    expect((await jobRow(job_id))).toMatchObject({ status: "failed", error_code: "drill_failed" });
  });

  it("the weekly cron starts a drill when dr_testing_enabled, and not otherwise", async () => {
    const run = async (vars: Record<string, unknown>) => {
      const ctx = createExecutionContext();
      await worker.scheduled(createScheduledController({ cron: "0 0 * * 0", scheduledTime: Date.now() }), testEnv({ JOBS: recordingQueue([]), ...vars }), ctx);
      await waitOnExecutionContext(ctx);
      return (await env.CATALOG.prepare("SELECT * FROM jobs WHERE kind = 'dr.drill'").all()).results;
    };
    expect(await run({ DR_TESTING_ENABLED: "false" })).toHaveLength(0);
    const jobs = await run({});
    expect(jobs).toHaveLength(1);
    expect(jobs[0]).toMatchObject({ requested_by: "cron:0 0 * * 0" });
    expect((await openDrStore(env.CATALOG).getRun(String(jobs[0]!.id)))?.trigger).toBe("scheduled");
  });

  it("DR_CANARY: every cron run writes a canary object into each storage source and queues a database canary job", async () => {
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ cron: "*/10 * * * *", scheduledTime: Date.now() }), testEnv({ JOBS: recordingQueue([]), DR_CANARY: "true" }), ctx);
    await waitOnExecutionContext(ctx);
    const canary = await (env.ASTRID_DATA as R2Bucket).get("astrid-dr-canary.json");
    expect(canary).not.toBeNull();
    expect(Date.parse((await canary!.json<{ written_at: string }>()).written_at)).toBeGreaterThan(Date.now() - 60_000);
    const jobs = (await env.CATALOG.prepare("SELECT kind FROM jobs WHERE kind = 'dr.canary'").all()).results;
    expect(jobs).toHaveLength(1);
    await (env.ASTRID_DATA as R2Bucket).delete("astrid-dr-canary.json");
  });

  it("needs an admin; refuses unknown fields and bad settings with an error body", async () => {
    expect((await api("POST", "/backup/test-recovery", { body: {}, token: VIEWER })).status).toBe(403);
    expect((await api("POST", "/backup/test-recovery", { body: {}, token: null })).status).toBe(401);
    const bad = await api("POST", "/backup/test-recovery", { body: { now: true } });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe("invalid_request");
    const setting = await api("POST", "/backup/test-recovery", { body: {}, env: { DR_RESTORE_POINT: "yesterday" } });
    expect(setting.status).toBe(500);
    expect(setting.body.error).toMatchObject({ code: "config_invalid" });
    expect(setting.body.error.message).toContain("DR_RESTORE_POINT");
    const secret = await api("POST", "/backup/test-recovery", { body: {}, env: { DR_DATABASE_URL: "mysql://u:hunter2-secret@x/y" } });
    expect(secret.body.error.message).toContain("DR_DATABASE_URL");
    expect(secret.text).not.toContain("hunter2-secret");
  });
});

describe("dispatching a drill", () => {
  it("key_holder_unavailable without AGE_ESCROW_IDENTITY fails at dispatch with escrow_missing", async () => {
    const backup = await seedBackup({ created_at: isoSecondsAgo(600), verify_status: "passed" });
    const job = await seedJob({ kind: "dr.drill", status: "running", params: {} });
    const params = {
      trigger: "manual" as const, restore_point: "latest" as const, databases: [{ database: "astrid", backup_id: backup.id }], ml: [], storage: [],
      catalog: false, missing: [], scenario: { name: "key_holder_unavailable", escrow_only: true },
    };
    const ctx = { ...ctxOf(), job, repository: async () => ({ url: "https://repo.test/repo/v1", token: "t" }) };
    await expect(buildDrillDispatch(params, ctx)).rejects.toMatchObject({ code: "escrow_missing" });
    const withEscrow = { ...ctx, ...ctxOf(testEnv({ AGE_ESCROW_IDENTITY: "AGE-SECRET-KEY-1ESCROWONLY" })) };
    expect((await buildDrillDispatch(params, withEscrow)).identities).toEqual(["AGE-SECRET-KEY-1ESCROWONLY"]);
    const plain = await buildDrillDispatch({ ...params, scenario: undefined }, ctx);
    expect(plain.databases[0]!.target_url).toMatch(/^postgres:\/\/backup:s3cret-pw@127\.0\.0\.1:1\/astrid_dr_job_/); // the source's server, a scratch name
    expect(plain.databases[0]!.target_url).not.toMatch(/\/astrid$/);
  });
});

describe("judging a drill", () => {
  it("a passing runner report passes the run, measures the data loss and settles the job", async () => {
    await seedBackup({ created_at: isoSecondsAgo(600), verify_status: "passed" });
    const { job_id } = await startDrill();
    await report(job_id, { status: "succeeded", result: drillResult() });
    const run = (await api("GET", `/dr/runs/${job_id}`)).body;
    expect(run.status).toBe("passed");
    expect(run.data_loss_seconds).toBeGreaterThanOrEqual(599);
    expect(run.results[0].details).toMatchObject({ data_loss_measured_by: "restore_point" });
    expect(await jobRow(job_id)).toMatchObject({ status: "succeeded" });
    // A repeated report changes nothing.
    await report(job_id, { status: "succeeded", result: drillResult({ passed: false, problems: ["late"] }) });
    expect((await api("GET", `/dr/runs/${job_id}`)).body.status).toBe("passed");
  });

  it("a failed domain fails the drill and fires the drill alert once; a dead webhook does not fail anything", async () => {
    await seedBackup({ created_at: isoSecondsAgo(600), verify_status: "passed" });
    const vars = { ...ONLY_DATABASE, ALERT_WEBHOOK_URLS: "http://127.0.0.1:1/dead" };
    for (let i = 0; i < 2; i++) {
      const { job_id } = await startDrill(vars);
      await report(job_id, { status: "succeeded", result: drillResult({ passed: false, problems: ["chunk #3 abc: damaged"] }) }, vars);
      expect(await jobRow(job_id)).toMatchObject({ status: "failed", error_code: "drill_failed" });
      expect((await jobRow(job_id))?.error_message).toContain("chunk #3 abc");
    }
    const alerts = await openDrStore(env.CATALOG).listAlerts();
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ key: "drill_failed:drill", status: "firing" });
  });

  it("a drill whose runner was lost is settled as failed when anyone looks", async () => {
    await seedBackup({ created_at: isoSecondsAgo(600), verify_status: "passed" });
    const { job_id } = await startDrill();
    await env.CATALOG.prepare("UPDATE jobs SET heartbeat_at = ? WHERE id = ?").bind(isoSecondsAgo(3600), job_id).run();
    const runs = (await api("GET", "/dr/runs", { token: VIEWER })).body.runs;
    expect(runs[0]).toMatchObject({ run_id: job_id, status: "failed" });
    expect(runs[0].errors[0]).toContain("runner_lost");
    expect((await openDrStore(env.CATALOG).getAlert("drill_failed:drill"))?.status).toBe("firing");
  });
});

describe("alert state", () => {
  it("a job that failed without a report (runner lost) fires job_failed at the next cron; its next success resolves it", async () => {
    const res = await api("POST", "/backup/database", { body: { type: "full" } });
    await catalog().claimJob(res.body.job_id, new Date(Date.now() - 3_600_000), 120, CLAIM);
    const cron = async () => {
      const ctx = createExecutionContext();
      await worker.scheduled(createScheduledController({ cron: "*/10 * * * *", scheduledTime: Date.now() }), testEnv({ JOBS: recordingQueue([]) }), ctx);
      await waitOnExecutionContext(ctx);
    };
    await cron();
    expect(await jobRow(res.body.job_id)).toMatchObject({ status: "failed", error_code: "runner_lost" });
    expect(await openDrStore(env.CATALOG).getAlert("job_failed:database.backup:astrid")).toMatchObject({ status: "firing" });
    const next = await api("POST", "/backup/database", { body: { type: "full" } });
    await catalog().claimJob(next.body.job_id, new Date(), 120, CLAIM);
    await catalog().succeedJob(next.body.job_id, {}, new Date());
    await cron();
    expect(await openDrStore(env.CATALOG).getAlert("job_failed:database.backup:astrid")).toMatchObject({ status: "resolved" });
  });

  it("fires once and resolves once", async () => {
    const alert = { key: "rpo_breached:database:astrid", kind: "rpo_breached", source: "database astrid", summary: "old" };
    const e = ctxOf();
    expect(await setAlert(e, alert, true)).toBe("fired");
    expect(await setAlert(e, alert, true)).toBe("unchanged");
    expect(await setAlert(e, alert, false)).toBe("resolved");
    expect(await setAlert(e, alert, false)).toBe("unchanged");
    expect(await setAlert(e, alert, true)).toBe("fired");
  });
});

describe("RTO, status and metrics", () => {
  it("rtoState: ok up to half the target, at_risk above, breached over it", () => {
    expect(rtoState(null, 60)).toBe("unknown");
    expect(rtoState(30, 60)).toBe("ok");
    expect(rtoState(31, 60)).toBe("at_risk");
    expect(rtoState(61, 60)).toBe("breached");
  });

  it("a database under continuous archiving: the archive's age is the RPO in force, so 9 hours after the last backup nothing alerts until the stream stalls", async () => {
    const vars = { DATABASE_CONTINUOUS: "astrid" };
    await seedBackup({ created_at: isoSecondsAgo(9 * 3600), verify_status: "passed" });
    const alerts = openDrStore(env.CATALOG);
    const rpoOf = async () => (await api("GET", "/dr/status", { token: VIEWER, env: vars })).body.sources.find((s: any) => s.domain === "database");

    // Without a stream: the 9-hour-old backup is the RPO, and it breaches the 15-minute target.
    expect(await rpoOf()).toMatchObject({ protection: "restore_points", rpo_minutes: 540, rpo_met: false });
    await evaluateAlerts(ctxOf(testEnv(vars)));
    expect(await alerts.getAlert("rpo_breached:database:astrid")).toMatchObject({ status: "firing" });

    // A live stream whose newest durable commit is 40 s old: protected, and the alert resolves.
    const streams = openContinuousCatalog(env.CATALOG);
    const id = "db-astrid-20261127T010000Z-cccccc";
    await streams.createStream({ id, database: "astrid", slot_name: "astrid_astrid", holder_job_id: "job-c", created_at: isoSecondsAgo(3600) });
    await env.CATALOG.prepare("UPDATE continuous_streams SET status = 'active', covered_until = ? WHERE id = ?").bind(isoSecondsAgo(40), id).run();
    expect(await rpoOf()).toMatchObject({ protection: "continuous", rpo_minutes: 0.7, rpo_met: true });
    await evaluateAlerts(ctxOf(testEnv(vars)));
    expect(await alerts.getAlert("rpo_breached:database:astrid")).toMatchObject({ status: "resolved" });
    const metrics = (await api("GET", "/metrics", { token: VIEWER, env: vars })).text;
    expect(metrics).toMatch(/^astrid_rpo_seconds\{domain="database",source="astrid"\} 4[0-9]$/m);
    const row = (await api("GET", "/overview", { token: VIEWER, env: vars })).body.sources.find((s: any) => s.domain === "database");
    expect(row).toMatchObject({ rpo_state: "ok", continuous: { kind: "archive", replica: null } });
    expect(row.continuous.seconds_behind).toBeGreaterThanOrEqual(40);

    // The stream stalls: its coverage ages past the target and the alert fires again.
    await env.CATALOG.prepare("UPDATE continuous_streams SET covered_until = ? WHERE id = ?").bind(isoSecondsAgo(3600), id).run();
    expect(await rpoOf()).toMatchObject({ protection: "continuous", rpo_minutes: 60, rpo_met: false });
    await evaluateAlerts(ctxOf(testEnv(vars)));
    expect(await alerts.getAlert("rpo_breached:database:astrid")).toMatchObject({ status: "firing" });
  });

  it("/dr/rto implies an RTO from a drill's throughput and the newest point's size; /metrics exposes it", async () => {
    await seedBackup({ created_at: isoSecondsAgo(600), verify_status: "passed", logical_bytes: 50_000_000 });
    const { job_id } = await startDrill();
    await report(job_id, { status: "succeeded", result: drillResult() });
    // 50 MB restored in 1 s: a 2.4 TB newest point would take 48,000 s = 800 min, breaching the 60-minute target.
    await seedBackup({ created_at: isoSecondsAgo(5), logical_bytes: 2_400_000_000_000 });
    const rto = (await api("GET", "/dr/rto", { token: VIEWER })).body.sources.find((s: any) => s.domain === "database");
    expect(rto).toMatchObject({ source: "astrid", restores_measured: 1, last_seconds: 1, throughput_bytes_per_second: 50_000_000, implied_rto_minutes: 800, state: "breached" });
    const status = (await api("GET", "/dr/status", { token: VIEWER })).body;
    expect(status.sources.find((s: any) => s.domain === "database")).toMatchObject({ protection: "restore_points", rpo_met: true, last_drill: { passed: true } });

    const res = await api("GET", "/metrics", { token: VIEWER });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/plain");
    expect(res.text).toContain("# TYPE astrid_backup_last_success_timestamp_seconds gauge");
    expect(res.text).toMatch(/^astrid_rto_estimate_seconds\{domain="database",source="astrid"\} 48000$/m);
    expect(res.text).toMatch(/^astrid_dr_last_drill_passed 1$/m);
    expect(res.text).toMatch(/^astrid_rpo_seconds\{domain="database",source="astrid"\} \d+/m);
    // Every sample line is name{labels} value: what Prometheus parses.
    for (const line of res.text.split("\n").filter((l) => l && !l.startsWith("#"))) expect(line).toMatch(/^[a-z_]+(\{[^}]*\})? [-0-9.e+NaN]+$/);
    expect((await api("GET", "/metrics", { token: null })).status).toBe(401);
  });
});
