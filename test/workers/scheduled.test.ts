// The cron handler (workers/jobs/schedule.ts) through the Worker's default
// export `scheduled`: each configured schedule creates one backup job per
// configured database, and every run sweeps jobs whose runner went silent.
import { createExecutionContext, createScheduledController, env, waitOnExecutionContext } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import worker from "../../workers/index.ts";
import { BackupId } from "../../workers/shared/format.ts";
import type { JobRow } from "../../workers/catalog/schema.ts";
import type { JobMessage } from "../../workers/shared/protocol.ts";
import type { DatabaseBackupParams } from "../../workers/database/protocol.ts";
import { allBackupRows, auditRows, isoDaysAgo, isoSecondsAgo, jobRow, recordingQueue, resetState, seedBackup, seedBackupJob, seedJob, testEnv } from "./helpers.ts";

beforeEach(resetState);

const SCHEDULED_AT = Date.UTC(2026, 10, 25, 2, 0, 0);

/** Runs the scheduled handler for `cron` and returns the jobs it created and the messages it queued. */
async function runCron(cron: string, vars: Record<string, unknown> = {}, scheduledTime = SCHEDULED_AT) {
  const queued: JobMessage[] = [];
  const ctx = createExecutionContext();
  await worker.scheduled(createScheduledController({ cron, scheduledTime }), testEnv({ JOBS: recordingQueue(queued), ...vars }), ctx);
  await waitOnExecutionContext(ctx);
  const rows = await env.CATALOG.prepare("SELECT * FROM jobs WHERE requested_by LIKE 'cron:%' ORDER BY id").all<JobRow>();
  const jobs = rows.results.map((j) => ({ ...j, params: JSON.parse(j.params) as DatabaseBackupParams }));
  return { jobs, queued };
}

describe("scheduled handler", () => {
  it('creates one full backup job for the configured database on "0 2 * * *"', async () => {
    const { jobs, queued } = await runCron("0 2 * * *");
    expect(jobs).toHaveLength(1);
    const [job] = jobs;
    expect(job).toMatchObject({ kind: "database.backup", status: "queued", requested_by: "cron:0 2 * * *" });
    expect(job!.params).toEqual({ database: "astrid", type: "full", backup_id: job!.backup_id });
    expect(BackupId.safeParse(job!.backup_id).success).toBe(true);
    expect(job!.backup_id).toMatch(/^db-astrid-20261125T020000Z-/); // named for the scheduled time
    expect(queued).toEqual([{ job_id: job!.id }]);
    expect((await auditRows())[0]).toMatchObject({ actor: "cron:0 2 * * *", action: "database.backup", outcome: "accepted" });
  });

  it("applies retention with the daily full backup: backups past DATABASE_RETENTION_DAYS go, the newest stays", async () => {
    const old = await seedBackup({ created_at: isoDaysAgo(40, SCHEDULED_AT) });
    const recent = await seedBackup({ created_at: isoDaysAgo(2, SCHEDULED_AT) });
    await env.BACKUPS.put(old.manifest_key, "{}");
    await runCron("0 2 * * *", {}, SCHEDULED_AT);
    expect((await allBackupRows()).map((b) => b.id)).toEqual([recent.id]);
    expect(await env.BACKUPS.head(old.manifest_key)).toBeNull();
    expect(await auditRows()).toContainEqual(expect.objectContaining({ actor: "cron:0 2 * * *", action: "database.cleanup", outcome: "succeeded" }));
    // other crons leave retention alone
    const older = await seedBackup({ created_at: isoDaysAgo(50, SCHEDULED_AT) });
    await runCron("0 9-17 * * 1-5");
    expect((await allBackupRows()).map((b) => b.id)).toContain(older.id);
  });

  it('"0 3 * * *" snapshots every configured storage source; reconciliation visits protected buckets', async () => {
    const { jobs } = await runCron("0 3 * * *");
    // The test STORAGE_BUCKETS minus the replica of the static pair (a replica is not a source by default).
    expect(jobs.map((j) => (j.params as unknown as { bucket: string }).bucket).sort()).toEqual(["astrid-data", "astrid-scratch", "restore-target"]);
    expect(jobs.every((j) => j.kind === "storage.snapshot")).toBe(true);
    const only = await runCron("0 3 * * *", { STORAGE_BACKUP_SOURCES: "astrid-data/images/" });
    expect(only.jobs.filter((j) => j.kind === "storage.snapshot").length).toBe(4); // 3 from before + 1
    expect(only.jobs.at(-1)!.params).toMatchObject({ bucket: "astrid-data", prefix: "images/" });
    const reconcile = await runCron("15 * * * *");
    // Versioned by default: every bucket that is not a replica; replicated: astrid-data.
    expect(reconcile.jobs.filter((j) => j.kind === "storage.reconcile").map((j) => (j.params as unknown as { bucket: string }).bucket))
      .toEqual(["astrid-data", "astrid-scratch", "restore-target"]);
    expect((await runCron("0 3 * * *", { STORAGE_BACKUP_ENABLED: "false" })).queued).toEqual([]);
  });

  it("resumes a storage step whose invocation died, from its saved state; a second loss fails the job", async () => {
    const lost = await seedJob({
      kind: "storage.snapshot", status: "running", step: 4, state: '{"parts":3}', params: { snapshot_id: "x", bucket: "astrid-data", prefix: "" },
      heartbeat_at: isoSecondsAgo(16 * 60),
    });
    const young = await seedJob({ kind: "storage.restore", status: "running", step: 2, params: {}, heartbeat_at: isoSecondsAgo(5 * 60) });
    const { queued } = await runCron("*/10 * * * *", {}, Date.now());
    expect(queued).toEqual([{ job_id: lost.id, step: 4 }]);
    expect(await jobRow(lost.id)).toMatchObject({ status: "queued", step: 4, state: '{"parts":3}', error_code: "step_lost" });
    expect((await jobRow(young.id))!.status).toBe("running"); // still inside a consumer's budget
    await env.CATALOG.prepare("UPDATE jobs SET status = 'running', heartbeat_at = ? WHERE id = ?").bind(isoSecondsAgo(16 * 60), lost.id).run();
    await runCron("*/10 * * * *", {}, Date.now());
    expect(await jobRow(lost.id)).toMatchObject({ status: "failed", error_code: "step_lost" });
  });

  it("creates one full backup job per configured database", async () => {
    const { jobs, queued } = await runCron("0 2 * * *", { BACKUP_DATABASES: "astrid,sky,lab" });
    expect(jobs.map((j) => j.params.database).sort()).toEqual(["astrid", "lab", "sky"]);
    expect(jobs.every((j) => j.params.type === "full")).toBe(true);
    expect(new Set(jobs.map((j) => j.backup_id)).size).toBe(3);
    expect(queued.map((m) => m.job_id).sort()).toEqual(jobs.map((j) => j.id).sort());
  });

  it("creates incremental jobs on the business-hours schedule and archive jobs on the weekly one", async () => {
    expect((await runCron("0 9-17 * * 1-5")).jobs.map((j) => j.params.type)).toEqual(["incremental"]);
    await resetState();
    expect((await runCron("0 5 * * 0")).jobs.map((j) => j.params.type)).toEqual(["archive"]);
  });

  it("creates no job for a cron the config does not use", async () => {
    for (const cron of ["*/10 * * * *", "0 1 * * *", "1 2 3 4 5"]) {
      const { jobs, queued } = await runCron(cron);
      expect(jobs).toEqual([]);
      expect(queued).toEqual([]);
    }
    expect(await allBackupRows()).toEqual([]);
  });

  it("follows an overridden schedule", async () => {
    const vars = { DATABASE_BACKUP_SCHEDULE: "30 1 * * *" };
    expect((await runCron("0 2 * * *", vars)).jobs).toEqual([]);
    expect((await runCron("30 1 * * *", vars)).jobs.map((j) => j.params.type)).toEqual(["full"]);
  });

  it("creates nothing when backups are disabled", async () => {
    expect((await runCron("0 2 * * *", { BACKUP_ENABLED: "false" })).jobs).toEqual([]);
    expect((await runCron("0 2 * * *", { DATABASE_BACKUP_ENABLED: "false" })).jobs).toEqual([]);
  });

  it("fails loudly, creating nothing, when the config is invalid", async () => {
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ cron: "0 2 * * *", scheduledTime: SCHEDULED_AT }), testEnv({ DATABASE_RETENTION_DAYS: "soon" }), ctx);
    await expect(waitOnExecutionContext(ctx)).rejects.toThrow(/DATABASE_RETENTION_DAYS/);
    expect((await env.CATALOG.prepare("SELECT count(*) AS n FROM jobs").first<{ n: number }>())!.n).toBe(0);
  });
});

describe("the sweep on every scheduled run", () => {
  it("expires a running job whose runner stopped reporting to failed/runner_lost", async () => {
    const now = Date.now();
    const stale = await seedBackupJob({ status: "running", attempts: 1, started_at: isoSecondsAgo(900, now), heartbeat_at: isoSecondsAgo(600, now) });
    await runCron("*/10 * * * *", {}, now);
    const row = await jobRow(stale.id);
    expect(row).toMatchObject({ status: "failed", error_code: "runner_lost" });
    expect(row!.error_message).toMatch(/no heartbeat for 120s/);
    expect(row!.finished_at).toBe(new Date(now).toISOString());
    expect(await allBackupRows()).toEqual([]);
  });

  it("leaves running jobs with a recent heartbeat, and queued and finished jobs, alone", async () => {
    const now = Date.now();
    const live = await seedBackupJob({ status: "running", attempts: 1, started_at: isoSecondsAgo(900, now), heartbeat_at: isoSecondsAgo(30, now) });
    const queued = await seedBackupJob({ created_at: isoSecondsAgo(3600, now) });
    const done = await seedBackupJob({ status: "succeeded", attempts: 1, heartbeat_at: isoSecondsAgo(3600, now), finished_at: isoSecondsAgo(3500, now) });
    await runCron("*/10 * * * *", {}, now);
    expect(await jobRow(live.id)).toEqual(live);
    expect(await jobRow(queued.id)).toEqual(queued);
    expect(await jobRow(done.id)).toEqual(done);
  });

  it("uses JOB_LEASE_SECONDS as the lease", async () => {
    const now = Date.now();
    const job = await seedBackupJob({ status: "running", attempts: 1, heartbeat_at: isoSecondsAgo(200, now) });
    await runCron("*/10 * * * *", { JOB_LEASE_SECONDS: "300" }, now);
    expect((await jobRow(job.id))!.status).toBe("running");
    await runCron("*/10 * * * *", { JOB_LEASE_SECONDS: "150" }, now);
    expect((await jobRow(job.id))!.status).toBe("failed");
  });

  it("also runs on a backup schedule, before creating the new jobs", async () => {
    const now = SCHEDULED_AT;
    const stale = await seedBackupJob({ status: "running", attempts: 1, heartbeat_at: isoSecondsAgo(600, now) });
    const { jobs } = await runCron("0 2 * * *", {}, now);
    expect(jobs).toHaveLength(1);
    expect((await jobRow(stale.id))!.error_code).toBe("runner_lost");
    expect((await jobRow(jobs[0]!.id))!.status).toBe("queued");
  });
});
