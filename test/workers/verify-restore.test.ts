// POST /backups/:id/verify and POST /backups/:id/restore. A restore target
// given as a connection URL is sealed at once: it never appears in clear in
// the catalog (jobs, audit log), in any response or in a log line.
import { env } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { unseal } from "../../workers/crypto.ts";
import { DatabaseRestoreParams } from "../../workers/database/protocol.ts";
import { api, auditRows, captureLogs, catalogDump, jobRow, resetState, seedBackup, sentMessages, type ApiResponse } from "./helpers.ts";

beforeEach(resetState);

const BACKUP_ID = "db-astrid-20261101T020000Z-abcdef";
const seedTheBackup = (status: "completed" | "corrupt" = "completed") =>
  seedBackup({ id: BACKUP_ID, created_at: "2026-11-01T02:00:00.000Z", status });

const verify = (body?: unknown, id = BACKUP_ID) => api("POST", `/backups/${id}/verify`, { body });
const restore = (body: unknown, id = BACKUP_ID, envOverrides?: Record<string, unknown>) =>
  api("POST", `/backups/${id}/restore`, { body, ...(envOverrides ? { env: envOverrides } : {}) });

describe("POST /backups/:id/verify", () => {
  beforeEach(() => seedTheBackup());

  it("queues a quick verify by default and answers 202 {job_id}", async () => {
    const res = await verify({});
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ job_id: expect.stringMatching(/^job-/), status: "queued" });
    const job = await jobRow(res.body.job_id);
    expect(job).toMatchObject({ kind: "database.verify", status: "queued", backup_id: BACKUP_ID });
    expect(JSON.parse(job!.params)).toEqual({ backup_id: BACKUP_ID, depth: "quick" });
    expect(sentMessages).toEqual([{ job_id: res.body.job_id }]);
  });

  it("accepts depth full", async () => {
    const res = await verify({ depth: "full" });
    expect(res.status).toBe(202);
    expect(JSON.parse((await jobRow(res.body.job_id))!.params).depth).toBe("full");
  });

  it("answers 400 for an unknown depth", async () => {
    const res = await verify({ depth: "deep" });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: "invalid_request", message: expect.stringContaining("depth") });
    expect(sentMessages).toEqual([]);
  });

  it("answers 404 for an unknown backup and queues nothing", async () => {
    const res = await verify({}, "db-astrid-20261101T020000Z-nosuch");
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe("not_found");
    expect(sentMessages).toEqual([]);
  });

  it("audits the verify request", async () => {
    const res = await verify({});
    expect(await auditRows()).toEqual([
      expect.objectContaining({ action: "database.verify", target: BACKUP_ID, outcome: "accepted", detail: JSON.stringify({ job_id: res.body.job_id }) }),
    ]);
  });
});

describe("POST /backups/:id/restore to a configured database", () => {
  beforeEach(() => seedTheBackup());

  it("queues a restore job naming the target and answers 202 {job_id}", async () => {
    const res = await restore({ target: "astrid" });
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ job_id: expect.stringMatching(/^job-/), status: "queued" });
    const job = await jobRow(res.body.job_id);
    expect(job).toMatchObject({ kind: "database.restore", status: "queued", backup_id: BACKUP_ID });
    expect(JSON.parse(job!.params)).toEqual({ backup_id: BACKUP_ID, replace: false, target_label: "astrid", target_database: "astrid" });
    expect(sentMessages).toEqual([{ job_id: res.body.job_id }]);
  });

  it("passes replace: true through", async () => {
    const res = await restore({ target: "astrid", replace: true });
    expect(JSON.parse((await jobRow(res.body.job_id))!.params).replace).toBe(true);
  });

  const refused: [string, unknown, number, string][] = [
    ["no target", {}, 400, "invalid_request"],
    ["an empty target", { target: "" }, 400, "invalid_request"],
    ["a database name that is not configured", { target: "ghost" }, 400, "invalid_request"],
    ["something that is neither a name nor a postgres URL", { target: "mysql://root@db/astrid" }, 400, "invalid_request"],
    ["a non-boolean replace", { target: "astrid", replace: "yes" }, 400, "invalid_request"],
    ["an unknown field", { target: "astrid", force: true }, 400, "invalid_request"],
  ];
  for (const [what, body, status, code] of refused) {
    it(`answers ${status} ${code} for ${what}`, async () => {
      const res = await restore(body);
      expect(res.status).toBe(status);
      expect(res.body.error.code).toBe(code);
      expect(sentMessages).toEqual([]);
      expect((await api("GET", "/jobs")).body.jobs).toEqual([]);
    });
  }

  it("answers 422 for a configured database that has no URL secret", async () => {
    const res = await restore({ target: "sky" }, BACKUP_ID, { BACKUP_DATABASES: "astrid,sky" });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe("database_not_configured");
  });

  it("answers 404 for an unknown backup", async () => {
    const res = await restore({ target: "astrid" }, "db-astrid-20261101T020000Z-nosuch");
    expect(res.status).toBe(404);
    expect(sentMessages).toEqual([]);
  });

  it("refuses with 409 to restore a backup that failed verification", async () => {
    await resetState();
    await seedTheBackup("corrupt");
    const res = await restore({ target: "astrid" });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe("conflict");
    expect(sentMessages).toEqual([]);
  });
});

describe("POST /backups/:id/restore to a connection URL", () => {
  const PASSWORD = "Hunter2-restore-pw";
  const HOST = "restore-target.db.example.net";
  const TARGET = `postgresql://restorer:${PASSWORD}@${HOST}:6543/astrid_restore?sslmode=require`;

  beforeEach(() => seedTheBackup());

  const expectNoUrl = (text: string) => {
    expect(text).not.toContain(PASSWORD);
    expect(text).not.toContain(HOST);
    expect(text).not.toContain("restorer");
    expect(text).not.toContain("postgresql://");
  };

  it("seals the URL: the job params hold only a label and a sealed value that opens to the URL", async () => {
    const res = await restore({ target: TARGET, replace: true });
    expect(res.status).toBe(202);
    const params = DatabaseRestoreParams.parse(JSON.parse((await jobRow(res.body.job_id))!.params));
    expect(params).toMatchObject({ backup_id: BACKUP_ID, replace: true, target_label: "astrid_restore (url)" });
    expect(params.target_database).toBeUndefined();
    expect(params.target_url_sealed).toEqual(expect.any(String));
    expectNoUrl(params.target_url_sealed!);
    // Sealed, not dropped: only the Worker's secret opens it, and it opens to exactly the URL.
    expect(await unseal(String(env.JOB_TOKEN_SECRET), params.target_url_sealed!)).toBe(TARGET);
    await expect(unseal("some-other-secret", params.target_url_sealed!)).rejects.toThrow();
  });

  it("never stores the URL in the jobs table or the audit log, nor echoes it in any response or log line", async () => {
    const { result: res, logs } = await captureLogs(() => restore({ target: TARGET }));
    expect(res.status).toBe(202);
    const responses: ApiResponse[] = [
      res,
      await api("GET", `/jobs/${res.body.job_id}`),
      await api("GET", "/jobs"),
      await api("GET", "/audit"),
      await api("GET", `/backups/${BACKUP_ID}`),
    ];
    for (const r of responses) expectNoUrl(r.text);
    expectNoUrl(await catalogDump());
    expectNoUrl(JSON.stringify(sentMessages));
    expectNoUrl(logs);
    // The audit log still says what happened, by label.
    expect((await auditRows())[0]).toMatchObject({ action: "database.restore", target: `${BACKUP_ID} -> astrid_restore (url)`, outcome: "accepted" });
  });

  it("seals the same URL differently each time", async () => {
    const a = await restore({ target: TARGET });
    const b = await restore({ target: TARGET });
    const sealedA = JSON.parse((await jobRow(a.body.job_id))!.params).target_url_sealed;
    const sealedB = JSON.parse((await jobRow(b.body.job_id))!.params).target_url_sealed;
    expect(sealedA).not.toBe(sealedB);
  });

  const badUrls: [string, string][] = [
    ["a URL that does not parse", `postgres://restorer:${PASSWORD}@${HOST}:notaport/astrid_restore`],
    ["a URL without a database name", `postgres://restorer:${PASSWORD}@${HOST}:5432/`],
  ];
  for (const [what, target] of badUrls) {
    it(`answers 400 for ${what} without echoing it or storing anything`, async () => {
      const { result: res, logs } = await captureLogs(() => restore({ target }));
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("invalid_request");
      expectNoUrl(res.text);
      expectNoUrl(logs);
      expectNoUrl(await catalogDump());
      expect(sentMessages).toEqual([]);
    });
  }

  it("does not echo the URL when another field of the request is invalid", async () => {
    const res = await restore({ target: TARGET, replace: "please" });
    expect(res.status).toBe(400);
    expectNoUrl(res.text);
    expectNoUrl(await catalogDump());
  });

  it("does not echo an over-long URL", async () => {
    const res = await restore({ target: `${TARGET}&${"x".repeat(3000)}` });
    expect(res.status).toBe(400);
    expectNoUrl(res.text);
  });
});
