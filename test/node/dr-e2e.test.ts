// Disaster-recovery drills end to end on the real parts: PostgreSQL, the
// local stack (workerd R2/D1/Queues + runner), a local webhook receiver.
// A drill fired through /__scheduled restores the database into a scratch
// database and validates it table by table against the backup's consistency
// record, restores a storage snapshot into a scratch prefix and hashes every
// object, rebuilds the catalog from R2 and compares; it never writes to the
// source; a tampered chunk fails it (naming the chunk) and fires an alert,
// which resolves once a good backup exists; a drill killed with its runner
// is settled as failed and its scratch database swept by the next drill.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedAstronomyDatabase } from "../../runner/dev/astronomy-seed.ts";
import { tableFingerprints } from "../../runner/dev/compare.ts";
import { psql } from "../../runner/dev/postgres.ts";
import { pseudoRandom } from "../../runner/dev/pseudo-random.ts";
import { createDatabase, dropDatabase, scratchName, startTestStack, testPg, type TestStack } from "../support/fixture.ts";
import { tamperWithChunk } from "../support/tamper.ts";
import { startWebhookReceiver, type WebhookReceiver } from "../support/webhook-receiver.ts";

const pg = testPg();
const sourceName = scratchName("dr_src");
const DRILL_CRON = "0 0 * * 0";
let sourceUrl: string;
let stack: TestStack;
let hooks: WebhookReceiver;

const scratchDatabases = async () =>
  (await psql(pg.url("postgres"), "SELECT datname FROM pg_database WHERE datname LIKE 'astrid\\_dr\\_%'")).split("\n").filter(Boolean);
/** Writes to the source, as PostgreSQL counts them: a drill must add none. */
const sourceWrites = async () =>
  psql(sourceUrl, "SELECT pg_stat_force_next_flush(); SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables");

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function backupAndVerify(type: "full" | "archive") {
  const { status, body } = await stack.api("POST", "/backup/database", { type });
  expect(status).toBe(202);
  expect((await stack.waitForJob(body.job_id)).status).toBe("succeeded");
  // DATABASE_VERIFY_AFTER_BACKUP (quick) queues the verification: a drill takes verified points only.
  return waitFor("verification", async () => {
    const b = (await stack.api("GET", `/backups/${body.backup_id}`)).body;
    return b.verify_status ? b : undefined;
  });
}

/** Fires the weekly cron and waits for the drill it starts. */
async function scheduledDrill(): Promise<{ job: any; run: any }> {
  const before = new Set((await stack.api("GET", "/jobs?kind=dr.drill")).body.jobs.map((j: any) => j.id));
  await stack.triggerCron(DRILL_CRON);
  const id = await waitFor("the drill job", async () =>
    (await stack.api("GET", "/jobs?kind=dr.drill")).body.jobs.map((j: any) => j.id).find((j: string) => !before.has(j)));
  const job = await stack.waitForJob(id);
  const run = (await stack.api("GET", `/dr/runs/${id}`, undefined, stack.secrets.VIEWER_TOKEN)).body;
  return { job, run };
}

const drillAlerts = () => hooks.received.filter((r) => r.path === "/hook" && r.body?.alert?.kind === "drill_failed");

beforeAll(async () => {
  sourceUrl = await createDatabase(pg, sourceName);
  await seedAstronomyDatabase(sourceUrl, { targetBytes: 24 * 1024 * 1024 });
  hooks = await startWebhookReceiver();
  stack = await startTestStack({
    vars: {
      DATABASE_URL: sourceUrl, JOB_LEASE_SECONDS: "3",
      ALERT_WEBHOOK_URLS: `${hooks.url}/hook,${hooks.url}/slack#slack`, ALERT_DEADMAN_URL: `${hooks.url}/ping`,
      DR_STORAGE_SAMPLE: "3",
    },
  });
  for (let i = 0; i < 5; i++) {
    const res = await fetch(`${stack.workerUrl}/storage/objects/astrid-data/images/frame-${i}.fits`, {
      method: "PUT", body: pseudoRandom(50_000 + i, i + 1), headers: { authorization: `Bearer ${stack.secrets.ADMIN_TOKEN}` },
    });
    expect(res.status).toBe(201);
  }
  const snap = await stack.api("POST", "/backup/storage", { bucket: "astrid-data" });
  expect(snap.status).toBe(202);
  expect((await stack.waitForJob(snap.body.jobs[0].job_id)).status).toBe("succeeded");
});

afterAll(async () => {
  await stack?.dispose();
  await hooks?.close();
  await dropDatabase(pg, sourceName);
  for (const name of await scratchDatabases()) await dropDatabase(pg, name);
});

describe("DR drills on the local stack", () => {
  it("the weekly cron's drill restores database, storage and catalog, validates them, writes nothing to the source and leaves nothing behind", async () => {
    const backup = await backupAndVerify("full");
    expect(backup.verify_status).toBe("passed");
    const fingerprints = await tableFingerprints(sourceUrl);
    const writes = await sourceWrites();

    const { job, run } = await scheduledDrill();
    expect(job.error).toBeUndefined();
    expect(job.status).toBe("succeeded");
    expect(run).toMatchObject({ kind: "drill", trigger: "scheduled", status: "passed", errors: [] });
    const byDomain = Object.fromEntries(run.results.map((d: any) => [d.domain, d]));
    expect(Object.keys(byDomain).sort()).toEqual(["catalog", "database", "storage"]);
    expect(byDomain.database).toMatchObject({ source: "astrid", restore_point: backup.backup_id, passed: true, problems: [] });
    expect(byDomain.database.details.tables_compared).toBeGreaterThan(5);
    expect(byDomain.database.restore_ms).toBeGreaterThan(0);
    expect(byDomain.storage.details).toMatchObject({ objects_in_snapshot: 5, objects_checked: 3 });
    expect(byDomain.catalog.details.manifests).toBeGreaterThanOrEqual(2);
    expect(run.data_loss_seconds).toBeGreaterThanOrEqual(0);

    // Never the source: its contents and its write counters are as they were.
    expect(await tableFingerprints(sourceUrl)).toEqual(fingerprints);
    expect(await sourceWrites()).toBe(writes);
    // Nothing left: no scratch database, no scratch prefix.
    expect(await scratchDatabases()).toEqual([]);
    // A passed scheduled drill pings the dead-man's switch.
    expect(hooks.received.some((r) => r.path === "/ping")).toBe(true);

    const status = (await stack.api("GET", "/dr/status", undefined, stack.secrets.VIEWER_TOKEN)).body;
    const db = status.sources.find((s: any) => s.domain === "database");
    expect(db).toMatchObject({ source: "astrid", newest_verified_point: { id: backup.backup_id }, protection: "restore_points", rpo_met: true });
    expect(db.last_drill).toMatchObject({ run_id: job.id, passed: true, data_loss_met: true });
    const rto = (await stack.api("GET", "/dr/rto", undefined, stack.secrets.VIEWER_TOKEN)).body;
    const dbRto = rto.sources.find((s: any) => s.domain === "database");
    expect(dbRto.restores_measured).toBeGreaterThanOrEqual(1);
    expect(dbRto.throughput_bytes_per_second).toBeGreaterThan(0);
    expect(dbRto.state).toBe("ok");
    const metrics = await fetch(`${stack.workerUrl}/metrics`, { headers: { authorization: `Bearer ${stack.secrets.VIEWER_TOKEN}` } });
    const text = await metrics.text();
    expect(metrics.headers.get("content-type")).toContain("text/plain");
    expect(text).toContain("astrid_dr_last_drill_passed 1");
    expect(text).toMatch(/astrid_backup_last_success_timestamp_seconds\{domain="database",source="astrid",type="full"\} \d+/);
    expect(text).toMatch(/astrid_rto_estimate_seconds\{domain="database",source="astrid"\} [\d.]+/);
  });

  it("a tampered chunk fails the drill, which names the chunk and fires an alert once; a good backup resolves it", async () => {
    const latest = (await stack.api("GET", "/backup/database?limit=1")).body.backups[0];
    const chunk = tamperWithChunk(stack.persistDir, latest.backup_id, 1);
    const { job, run } = await scheduledDrill();
    expect(job.status).toBe("failed");
    expect(job.error.code).toBe("drill_failed");
    expect(job.error.message).toContain(chunk);
    expect(run.status).toBe("failed");
    expect(run.results.find((d: any) => d.domain === "database").problems.join("\n")).toContain(chunk);
    expect(await scratchDatabases()).toEqual([]); // dropped after a failure too

    const fired = drillAlerts();
    expect(fired).toHaveLength(1);
    expect(fired[0]!.body).toMatchObject({ status: "firing", alert: { kind: "drill_failed" } });
    expect(fired[0]!.body.alert.summary).toContain(chunk);
    expect(hooks.received.some((r) => r.path === "/slack" && typeof r.body?.text === "string" && r.body.text.includes("FIRING"))).toBe(true);
    // Failing again does not fire again.
    expect((await scheduledDrill()).run.status).toBe("failed");
    expect(drillAlerts()).toHaveLength(1);

    // An archive has its own chunks: a good restore point again.
    const good = await backupAndVerify("archive");
    expect(good.verify_status).toBe("passed");
    const again = await scheduledDrill();
    expect(again.run.status).toBe("passed");
    const alerts = drillAlerts();
    expect(alerts.map((a) => a.body.status)).toEqual(["firing", "resolved"]);
    const stored = (await stack.api("GET", "/dr/alerts", undefined, stack.secrets.VIEWER_TOKEN)).body.alerts;
    expect(stored.find((a: any) => a.key === "drill_failed:drill")).toMatchObject({ status: "resolved" });
  });

  it("a drill whose runner is killed mid-restore ends failed; the next drill sweeps its scratch database and passes", async () => {
    const { body } = await stack.api("POST", "/backup/test-recovery", {});
    expect(body.job_id).toBeTruthy();
    await waitFor("a scratch database", async () => ((await scratchDatabases()).length ? true : undefined));
    await stack.killRunner("SIGKILL");
    expect((await scratchDatabases()).length).toBeGreaterThan(0); // left behind by the dead runner
    const lost = await stack.waitForJob(body.job_id);
    expect(lost.error.code).toBe("runner_lost");
    const run = (await stack.api("GET", `/dr/runs/${body.job_id}`)).body;
    expect(run.status).toBe("failed");
    expect(run.errors[0]).toContain("runner_lost");

    await stack.startRunner();
    const next = await scheduledDrill();
    expect(next.run.status).toBe("passed");
    expect(next.job.result.swept.length).toBeGreaterThan(0);
    expect(await scratchDatabases()).toEqual([]);
    const runs = (await stack.api("GET", "/dr/runs?limit=50")).body.runs;
    expect(runs.map((r: any) => r.run_id)).toContain(body.job_id);
  });

  it("refuses bad input with an error body and needs an admin to start a drill", async () => {
    expect((await stack.api("POST", "/backup/test-recovery", {}, stack.secrets.VIEWER_TOKEN)).status).toBe(403);
    const bad = await stack.api("POST", "/backup/test-recovery", { surprise: 1 });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe("invalid_request");
    expect((await stack.api("GET", "/dr/runs?limit=0")).body.error.code).toBe("invalid_request");
    expect((await stack.api("GET", "/dr/runs/nope")).status).toBe(404);
  });
});
