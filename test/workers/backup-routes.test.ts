// POST /backup/database (start a backup) and GET /jobs/:id / GET /jobs.
import { beforeEach, describe, expect, it } from "vitest";
import { BackupId } from "../../workers/shared/format.ts";
import {
  api, auditRows, catalogDump, DATABASE_URL_PASSWORD, isoSecondsAgo, jobRow, resetState, seedBackupJob, sentMessages, VIEWER,
} from "./helpers.ts";

beforeEach(resetState);

const startBackup = (body?: unknown, env?: Record<string, unknown>) => api("POST", "/backup/database", { body, env });

describe("POST /backup/database", () => {
  it("queues a full backup of the default database and answers 202 {job_id, status: queued}", async () => {
    const res = await startBackup({ type: "full" });
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ job_id: expect.stringMatching(/^job-/), status: "queued", backup_id: expect.any(String) });
    expect(BackupId.safeParse(res.body.backup_id).success).toBe(true);
    expect(res.body.backup_id).toMatch(/^db-astrid-/);

    const job = await jobRow(res.body.job_id);
    expect(job).toMatchObject({ kind: "database.backup", status: "queued", backup_id: res.body.backup_id, attempts: 0 });
    expect(JSON.parse(job!.params)).toEqual({ database: "astrid", type: "full", backup_id: res.body.backup_id });
    expect(job!.requested_by).toMatch(/^admin:[0-9a-f]{8}$/);
  });

  it("puts only the job id on the queue, never a secret", async () => {
    const res = await startBackup({ type: "full" });
    expect(sentMessages).toEqual([{ job_id: res.body.job_id }]);
  });

  it("defaults to a full backup when the body is empty", async () => {
    const res = await api("POST", "/backup/database", { rawBody: "" });
    expect(res.status).toBe(202);
    expect(JSON.parse((await jobRow(res.body.job_id))!.params).type).toBe("full");
  });

  for (const type of ["incremental", "archive"] as const) {
    it(`accepts type "${type}"`, async () => {
      const res = await startBackup({ type });
      expect(res.status).toBe(202);
      expect(JSON.parse((await jobRow(res.body.job_id))!.params)).toMatchObject({ type, database: "astrid" });
    });
  }

  it("audits the request as accepted, naming the job", async () => {
    const res = await startBackup({ type: "archive" });
    const entries = await auditRows();
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ action: "database.backup", target: "astrid", outcome: "accepted" });
    expect(JSON.parse(entries[0]!.detail!)).toEqual({ job_id: res.body.job_id });
  });

  it("backs up another configured database when it has its own URL secret", async () => {
    const env = { BACKUP_DATABASES: "astrid,sky", DATABASE_URL_SKY: "postgres://u:sky-pw@127.0.0.1:1/sky" };
    const res = await startBackup({ type: "full", database: "sky" }, env);
    expect(res.status).toBe(202);
    expect(res.body.backup_id).toMatch(/^db-sky-/);
    expect(JSON.parse((await jobRow(res.body.job_id))!.params).database).toBe("sky");
    expect(await catalogDump()).not.toContain("sky-pw");
  });

  it("answers 422 database_not_configured for a configured database without a URL secret", async () => {
    const res = await startBackup({ database: "sky" }, { BACKUP_DATABASES: "astrid,sky" });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe("database_not_configured");
    expect(sentMessages).toEqual([]);
    expect((await api("GET", "/jobs")).body.jobs).toEqual([]);
  });

  it("answers 422 when the default database has no URL at all", async () => {
    const res = await startBackup({}, { DATABASE_URL: undefined });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe("database_not_configured");
  });

  const invalid: [string, unknown, string][] = [
    ["an unknown backup type", { type: "differential" }, "type"],
    ["a database that is not configured", { database: "ghost" }, "ghost"],
    ["a database name that is not a safe identifier", { database: "Astrid; DROP TABLE" }, "database"],
    ["an unknown field", { type: "full", compress: true }, "compress"],
    ["a non-object body", [1, 2], ""],
  ];
  for (const [what, body, mention] of invalid) {
    it(`answers 400 invalid_request for ${what} and queues nothing`, async () => {
      const res = await startBackup(body);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("invalid_request");
      expect(res.body.error.message).toContain(mention);
      expect(sentMessages).toEqual([]);
      expect((await api("GET", "/jobs")).body.jobs).toEqual([]);
    });
  }

  it("answers 400 invalid_json for a body that is not JSON", async () => {
    const res = await api("POST", "/backup/database", { rawBody: "{type: full" });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: { code: "invalid_json", message: expect.any(String) } });
  });

  it("answers 503 queue_unavailable and fails the job when the queue refuses it", async () => {
    const refusing = { send: async () => { throw new Error("queue is down"); } };
    const res = await startBackup({ type: "full" }, { JOBS: refusing });
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe("queue_unavailable");
    const [job] = (await api("GET", "/jobs")).body.jobs;
    expect(job).toMatchObject({ status: "failed", error: { code: "queue_unavailable" } });
    expect((await auditRows())[0]).toMatchObject({ action: "database.backup", outcome: "failed" });
  });

  it("never stores or echoes the database URL", async () => {
    const res = await startBackup({ type: "full" });
    const job = await api("GET", `/jobs/${res.body.job_id}`);
    for (const text of [res.text, job.text, await catalogDump(), JSON.stringify(sentMessages)]) {
      expect(text).not.toContain(DATABASE_URL_PASSWORD);
      expect(text).not.toContain("postgres://");
    }
  });
});

describe("GET /jobs/:id", () => {
  it("shows a new job as queued with the contract's fields", async () => {
    const started = await startBackup({ type: "full" });
    const res = await api("GET", `/jobs/${started.body.job_id}`, { token: VIEWER });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      id: started.body.job_id, kind: "database.backup", status: "queued", attempts: 0,
      backup_id: started.body.backup_id, created_at: expect.any(String),
    });
    expect(Number.isNaN(Date.parse(res.body.created_at))).toBe(false);
  });

  it("shows error, progress, result and timestamps when the job has them", async () => {
    const job = await seedBackupJob({
      status: "failed", attempts: 2, error_code: "dispatch_failed", error_message: "runner unreachable",
      progress: JSON.stringify({ phase: "dump", bytes: 10, chunks: 1 }), result: JSON.stringify({ note: "x" }),
      started_at: isoSecondsAgo(60), finished_at: isoSecondsAgo(1),
    });
    const res = await api("GET", `/jobs/${job.id}`);
    expect(res.body).toMatchObject({
      status: "failed", error: { code: "dispatch_failed", message: "runner unreachable" },
      progress: { phase: "dump", bytes: 10, chunks: 1 }, result: { note: "x" },
      started_at: job.started_at, finished_at: job.finished_at,
    });
  });

  it("answers 404 JSON for an unknown job", async () => {
    const res = await api("GET", "/jobs/job-nope");
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: { code: "not_found", message: "job not found" } });
  });

  it("reports a running job whose runner went silent as failed/runner_lost", async () => {
    const job = await seedBackupJob({ status: "running", attempts: 1, started_at: isoSecondsAgo(600), heartbeat_at: isoSecondsAgo(600) });
    const res = await api("GET", `/jobs/${job.id}`);
    expect(res.body).toMatchObject({ status: "failed", error: { code: "runner_lost" } });
  });
});

describe("GET /jobs", () => {
  it("lists jobs newest first and filters by status and kind", async () => {
    const a = await seedBackupJob({ created_at: "2026-11-01T00:00:00.000Z" });
    const b = await seedBackupJob({ created_at: "2026-11-02T00:00:00.000Z", status: "succeeded" });
    const c = await seedBackupJob({ created_at: "2026-11-03T00:00:00.000Z" });
    expect((await api("GET", "/jobs")).body.jobs.map((j: any) => j.id)).toEqual([c.id, b.id, a.id]);
    expect((await api("GET", "/jobs?status=queued")).body.jobs.map((j: any) => j.id)).toEqual([c.id, a.id]);
    expect((await api("GET", "/jobs?kind=database.restore")).body.jobs).toEqual([]);
    expect((await api("GET", "/jobs?limit=1")).body.jobs.map((j: any) => j.id)).toEqual([c.id]);
  });

  it("answers 400 for an unknown status filter", async () => {
    const res = await api("GET", "/jobs?status=lost");
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("invalid_request");
  });
});
