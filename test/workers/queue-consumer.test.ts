// The Queue consumer (workers/jobs/consumer.ts) through the Worker's default
// export `queue` handler. A message names a job; the job row decides: a
// redelivered message never dispatches a job twice, dispatch failures are
// retried with bounded backoff, dead letters fail the job with the reason.
//
// RUNNER_URL points at 127.0.0.1:1 where nothing listens, so a dispatch there
// fails. Tests that need a runner that answers bind a fake RUNNER namespace
// (the container transport), which the client prefers over RUNNER_URL.
import { createExecutionContext, createMessageBatch, env, getQueueResult, type QueueResult } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import worker from "../../workers/index.ts";
import type { Env } from "../../workers/env.ts";
import { seal } from "../../workers/crypto.ts";
import { readJobToken } from "../../workers/repository/job-token.ts";
import { DatabaseBackupDispatch as BackupDispatch, DatabaseRestoreDispatch as RestoreDispatch, DatabaseVerifyDispatch as VerifyDispatch } from "../../workers/database/protocol.ts";
import {
  api, auditRows, captureLogs, catalog, catalogDump, DATABASE_URL_PASSWORD, isoSecondsAgo, jobRow, resetState, seedBackupJob, seedJob, testEnv,
} from "./helpers.ts";

beforeEach(resetState);

const JOBS_QUEUE = "astrid-backup-jobs";
const DEAD_LETTERS = "astrid-backup-jobs-dlq";
let messageSeq = 0;

interface Delivery {
  ids: string[];
  result: QueueResult;
  acked: (i?: number) => boolean;
  retried: (i?: number) => { msgId: string; delaySeconds?: number } | undefined;
}

/** Delivers one batch to the Worker's queue handler and returns what it acked and retried. */
async function deliver(bodies: unknown[], opts: { queue?: string; attempts?: number; env?: Record<string, unknown> } = {}): Promise<Delivery> {
  const messages = bodies.map((body) => ({ id: `msg-${++messageSeq}`, timestamp: new Date(), attempts: opts.attempts ?? 1, body }));
  const batch = createMessageBatch(opts.queue ?? JOBS_QUEUE, messages);
  // getQueueResult() does not report retry delays: record them on the way through.
  const delays = new Map<string, number | undefined>();
  for (const m of batch.messages) {
    const retry = m.retry.bind(m);
    m.retry = (options?: QueueRetryOptions) => {
      delays.set(m.id, options?.delaySeconds);
      retry(options);
    };
  }
  const ctx = createExecutionContext();
  const handler: ExportedHandler<Env> = worker;
  await handler.queue!(batch, testEnv(opts.env), ctx);
  const result = await getQueueResult(batch, ctx);
  const ids = messages.map((m) => m.id);
  return {
    ids, result,
    acked: (i = 0) => result.ackAll || result.explicitAcks.includes(ids[i]!),
    retried: (i = 0) => {
      const r = result.retryMessages.find((m) => m.msgId === ids[i]);
      return r && { msgId: r.msgId, delaySeconds: delays.get(r.msgId) };
    },
  };
}

interface RunnerCall {
  url: string;
  authorization: string | null;
  body: any;
}

/** A RUNNER Durable Object namespace whose stub answers like a runner would. */
function fakeRunner(respond: (body: any) => Response = () => Response.json({ accepted: true }, { status: 202 })) {
  const calls: RunnerCall[] = [];
  const stub = {
    async fetch(req: Request) {
      const body = await req.json();
      calls.push({ url: req.url, authorization: req.headers.get("authorization"), body });
      return respond(body);
    },
  };
  const RUNNER = { idFromName: (name: string) => ({ name }), get: () => stub };
  return { env: { RUNNER }, calls };
}

describe("malformed messages", () => {
  const bodies: [string, unknown][] = [
    ["a string", "garbage"],
    ["null", null],
    ["an object without job_id", { id: "job-1" }],
    ["an empty job_id", { job_id: "" }],
    ["a numeric job_id", { job_id: 42 }],
  ];
  for (const [what, body] of bodies) {
    it(`are acked (${what}) and change no job`, async () => {
      const job = await seedBackupJob();
      const d = await deliver([body]);
      expect(d.acked()).toBe(true);
      expect(d.result.retryMessages).toEqual([]);
      expect(await jobRow(job.id)).toEqual(job);
    });
  }

  it("are acked on the dead-letter queue too", async () => {
    const d = await deliver([{ nope: true }], { queue: DEAD_LETTERS });
    expect(d.acked()).toBe(true);
    expect(await auditRows()).toEqual([]);
  });
});

describe("a message for a job that is finished or unknown", () => {
  for (const status of ["succeeded", "failed"] as const) {
    it(`is acked without dispatch when the job has ${status}`, async () => {
      const job = await seedBackupJob({ status, attempts: 1, finished_at: isoSecondsAgo(5) });
      const runner = fakeRunner();
      const d = await deliver([{ job_id: job.id }], { env: runner.env });
      expect(d.acked()).toBe(true);
      expect(d.retried()).toBeUndefined();
      expect(runner.calls).toEqual([]);
      expect(await jobRow(job.id)).toEqual(job);
    });
  }

  it("is acked when the job does not exist", async () => {
    const runner = fakeRunner();
    const d = await deliver([{ job_id: "job-that-never-was" }], { env: runner.env });
    expect(d.acked()).toBe(true);
    expect(runner.calls).toEqual([]);
  });
});

describe("dispatch to an unreachable runner", () => {
  it("retries a first delivery and puts the job back to queued with dispatch_failed", async () => {
    const job = await seedBackupJob();
    const d = await deliver([{ job_id: job.id }]);
    expect(d.acked()).toBe(false);
    expect(d.retried()).toEqual({ msgId: d.ids[0], delaySeconds: 10 });
    const row = await jobRow(job.id);
    expect(row).toMatchObject({ status: "queued", attempts: 1, error_code: "dispatch_failed", finished_at: null });
    expect(row!.error_message).toMatch(/runner unreachable/);
    expect(row!.started_at).not.toBeNull();
  });

  it("never writes the database URL into the catalog or a log line while failing", async () => {
    const job = await seedBackupJob();
    const { logs } = await captureLogs(() => deliver([{ job_id: job.id }, "malformed"]));
    expect(logs).toContain("dropping malformed job message"); // the capture works
    const dump = await catalogDump();
    for (const text of [dump, logs]) {
      expect(text).not.toContain(DATABASE_URL_PASSWORD);
      expect(text).not.toContain("postgres://");
    }
  });

  it("backs off exponentially, capped at 300 seconds", async () => {
    const delays: (number | undefined)[] = [];
    for (const attempts of [1, 2, 3, 6, 20]) {
      const job = await seedBackupJob();
      delays.push((await deliver([{ job_id: job.id }], { attempts })).retried()?.delaySeconds);
    }
    expect(delays).toEqual([10, 20, 40, 300, 300]);
  });

  it("counts each delivery as an attempt", async () => {
    const job = await seedBackupJob();
    await deliver([{ job_id: job.id }], { attempts: 1 });
    await deliver([{ job_id: job.id }], { attempts: 2 });
    expect(await jobRow(job.id)).toMatchObject({ status: "queued", attempts: 2, error_code: "dispatch_failed" });
  });

  it("fails over to a retry when no runner is configured at all", async () => {
    const job = await seedBackupJob();
    const d = await deliver([{ job_id: job.id }], { env: { RUNNER_URL: undefined } });
    expect(d.retried()).toBeDefined();
    expect(await jobRow(job.id)).toMatchObject({ status: "queued", error_code: "dispatch_failed", error_message: expect.stringContaining("no runner configured") });
  });
});

describe("dispatch to a runner that accepts the job", () => {
  it("acks the message, leaves the job running and sends the runner what a backup needs", async () => {
    const job = await seedBackupJob();
    const runner = fakeRunner();
    const d = await deliver([{ job_id: job.id }], { env: runner.env });
    expect(d.acked()).toBe(true);
    expect(await jobRow(job.id)).toMatchObject({ status: "running", attempts: 1, error_code: null });

    expect(runner.calls).toHaveLength(1);
    const call = runner.calls[0]!;
    expect(new URL(call.url).pathname).toBe("/jobs");
    expect(call.authorization).toBe(`Bearer ${env.RUNNER_TOKEN}`);
    const dispatch = BackupDispatch.parse(call.body);
    expect(dispatch).toMatchObject({
      job_id: job.id, backup_id: job.backup_id, database: "astrid", type: "full",
      source_url: env.DATABASE_URL, recipients: [env.BACKUP_ENCRYPTION_KEY], chunk_id_key: env.CHUNK_ID_KEY,
      repository: { url: env.REPOSITORY_URL },
    });
    const grant = await readJobToken(env.JOB_TOKEN_SECRET, dispatch.repository.token, new Date());
    expect(grant).toMatchObject({ job_id: job.id, scope: "write", backup_id: job.backup_id });
  });

  it("does not dispatch again when the message is redelivered while the runner works", async () => {
    const job = await seedBackupJob();
    const runner = fakeRunner();
    await deliver([{ job_id: job.id }], { env: runner.env });
    const again = await deliver([{ job_id: job.id }], { env: runner.env, attempts: 2 });
    expect(again.acked()).toBe(true);
    expect(runner.calls).toHaveLength(1);
    expect(await jobRow(job.id)).toMatchObject({ status: "running", attempts: 1 });
  });

  it("dispatches only once for duplicate messages in one batch", async () => {
    const job = await seedBackupJob();
    const runner = fakeRunner();
    const d = await deliver([{ job_id: job.id }, { job_id: job.id }], { env: runner.env });
    expect(d.acked(0) && d.acked(1)).toBe(true);
    expect(runner.calls).toHaveLength(1);
  });

  it("takes a running job back when its runner stopped reporting (lease ran out)", async () => {
    const job = await seedBackupJob({ status: "running", attempts: 1, started_at: isoSecondsAgo(900), heartbeat_at: isoSecondsAgo(900) });
    const runner = fakeRunner();
    const d = await deliver([{ job_id: job.id }], { env: runner.env });
    expect(d.acked()).toBe(true);
    expect(runner.calls).toHaveLength(1);
    const row = await jobRow(job.id);
    expect(row).toMatchObject({ status: "running", attempts: 2, started_at: job.started_at });
    expect(Date.parse(row!.heartbeat_at!)).toBeGreaterThan(Date.now() - 60_000);
  });

  it("opens a sealed restore target only for the runner", async () => {
    const target = "postgres://restorer:Sealed-pw-1@restore.example.net:5432/astrid_restore";
    const backupId = "db-astrid-20261101T020000Z-abcdef";
    const job = await seedJob({
      kind: "database.restore", backup_id: backupId,
      params: { backup_id: backupId, replace: true, target_label: "astrid_restore (url)", target_url_sealed: await seal(env.JOB_TOKEN_SECRET, target) },
    });
    const runner = fakeRunner();
    await deliver([{ job_id: job.id }], { env: runner.env });
    const dispatch = RestoreDispatch.parse(runner.calls[0]!.body);
    expect(dispatch).toMatchObject({ target_url: target, replace: true, backup_id: backupId, manifest_key: `manifests/database/${backupId}.json` });
    // A URL-given target carries the host policy: the runner checks every address the host resolves to.
    expect(dispatch.target_policy).toEqual({ allow: [], refuse_loopback: false });
    expect(dispatch.identities).toEqual([env.AGE_IDENTITY]);
    expect(await readJobToken(env.JOB_TOKEN_SECRET, dispatch.repository.token, new Date())).toMatchObject({ scope: "read", backup_id: backupId });
    expect(await catalogDump()).not.toContain("Sealed-pw-1");
  });

  it("restores to a configured database by its URL secret", async () => {
    const backupId = "db-astrid-20261101T020000Z-abcdef";
    const job = await seedJob({
      kind: "database.restore", backup_id: backupId,
      params: { backup_id: backupId, replace: false, target_label: "astrid", target_database: "astrid" },
    });
    const runner = fakeRunner();
    await deliver([{ job_id: job.id }], { env: runner.env });
    expect(RestoreDispatch.parse(runner.calls[0]!.body).target_url).toBe(env.DATABASE_URL);
    expect(RestoreDispatch.parse(runner.calls[0]!.body).target_policy).toBeUndefined(); // the config's own target
  });

  it("gives a quick verify no identities and a full verify the identities", async () => {
    const backupId = "db-astrid-20261101T020000Z-abcdef";
    const quick = await seedJob({ kind: "database.verify", backup_id: backupId, params: { backup_id: backupId, depth: "quick" } });
    const full = await seedJob({ kind: "database.verify", backup_id: backupId, params: { backup_id: backupId, depth: "full" } });
    const runner = fakeRunner();
    await deliver([{ job_id: quick.id }, { job_id: full.id }], { env: runner.env });
    const [q, f] = runner.calls.map((c) => VerifyDispatch.parse(c.body));
    expect(q).toMatchObject({ depth: "quick", identities: [] });
    expect(f).toMatchObject({ depth: "full", identities: [env.AGE_IDENTITY] });
  });
});

describe("dispatch to a runner that refuses the job", () => {
  // A runner (or a proxy in front of it) that quotes the request in its error.
  const echoingRunner = () =>
    fakeRunner((body) => Response.json({ error: { code: "invalid_job", message: `cannot run ${JSON.stringify(body)}` } }, { status: 400 }));

  it("retries, keeping the runner's reason but none of the backup's secrets", async () => {
    const job = await seedBackupJob();
    const runner = echoingRunner();
    const d = await deliver([{ job_id: job.id }], { env: runner.env });
    expect(d.retried()).toBeDefined();
    const row = await jobRow(job.id);
    expect(row).toMatchObject({ status: "queued", error_code: "dispatch_failed" });
    expect(row!.error_message).toMatch(/refused the job \(HTTP 400\).*invalid_job/);
    const dump = await catalogDump();
    for (const secret of [DATABASE_URL_PASSWORD, String(env.DATABASE_URL), String(env.CHUNK_ID_KEY), BackupDispatch.parse(runner.calls[0]!.body).repository.token]) {
      expect(dump).not.toContain(secret);
    }
    expect((await api("GET", `/jobs/${job.id}`)).text).not.toContain(DATABASE_URL_PASSWORD);
  });

  it("keeps a restore's target URL and identities out of the catalog", async () => {
    const target = "postgres://restorer:Echoed-pw-2@restore.example.net/astrid_restore";
    const backupId = "db-astrid-20261101T020000Z-abcdef";
    const job = await seedJob({
      kind: "database.restore", backup_id: backupId,
      params: { backup_id: backupId, replace: false, target_label: "astrid_restore (url)", target_url_sealed: await seal(env.JOB_TOKEN_SECRET, target) },
    });
    await deliver([{ job_id: job.id }], { env: echoingRunner().env });
    const dump = await catalogDump();
    expect(dump).toContain("dispatch_failed");
    for (const secret of ["Echoed-pw-2", "restore.example.net", String(env.AGE_IDENTITY)]) expect(dump).not.toContain(secret);
  });
});

describe("jobs that cannot run as asked", () => {
  it("fail at once with database_not_configured when the database is no longer configured", async () => {
    const job = await seedBackupJob({ database: "retired" });
    const runner = fakeRunner();
    const d = await deliver([{ job_id: job.id }], { env: runner.env });
    expect(d.acked()).toBe(true);
    expect(runner.calls).toEqual([]);
    expect(await jobRow(job.id)).toMatchObject({ status: "failed", error_code: "database_not_configured" });
  });

  it("fail at once with unknown_kind for a kind no runner handles", async () => {
    const job = await seedJob({ kind: "storage.backup", params: {} });
    const d = await deliver([{ job_id: job.id }]);
    expect(d.acked()).toBe(true);
    expect(await jobRow(job.id)).toMatchObject({ status: "failed", error_code: "unknown_kind" });
  });

  it("fail with secret_missing when CHUNK_ID_KEY is not set", async () => {
    const job = await seedBackupJob();
    const d = await deliver([{ job_id: job.id }], { env: { CHUNK_ID_KEY: "" } });
    expect(d.acked()).toBe(true);
    expect(await jobRow(job.id)).toMatchObject({ status: "failed", error_code: "secret_missing", error_message: expect.stringContaining("CHUNK_ID_KEY") });
  });

  it("fail with config_invalid when the config is broken", async () => {
    const job = await seedBackupJob();
    const d = await deliver([{ job_id: job.id }], { env: { DATABASE_BACKUP_SCHEDULE: "every night" } });
    expect(d.acked()).toBe(true);
    expect(await jobRow(job.id)).toMatchObject({ status: "failed", error_code: "config_invalid", error_message: expect.stringContaining("DATABASE_BACKUP_SCHEDULE") });
  });
});

describe("the dead-letter queue", () => {
  it("fails the job with dispatch_failed, keeping the last dispatch error as the reason", async () => {
    const job = await seedBackupJob();
    await deliver([{ job_id: job.id }]); // first delivery: runner unreachable, back to queued
    const d = await deliver([{ job_id: job.id }], { queue: DEAD_LETTERS, attempts: 4 });
    expect(d.acked()).toBe(true);
    const row = await jobRow(job.id);
    expect(row).toMatchObject({ status: "failed", error_code: "dispatch_failed" });
    expect(row!.error_message).toMatch(/gave up dispatching the job after retries; last error: runner unreachable/);
    expect(row!.finished_at).not.toBeNull();
    const [entry] = await auditRows();
    expect(entry).toMatchObject({ actor: "queue", action: "job.dead_letter", target: job.id, outcome: "failed" });
    expect(JSON.parse(entry!.detail!)).toEqual({ attempts: 4 });
  });

  it("fails a job that never got a dispatch error too", async () => {
    const job = await seedBackupJob();
    await deliver([{ job_id: job.id }], { queue: DEAD_LETTERS });
    expect(await jobRow(job.id)).toMatchObject({ status: "failed", error_code: "dispatch_failed", error_message: "gave up dispatching the job after retries" });
  });

  it("does not dispatch anything", async () => {
    const job = await seedBackupJob();
    const runner = fakeRunner();
    await deliver([{ job_id: job.id }], { queue: DEAD_LETTERS, env: runner.env });
    expect(runner.calls).toEqual([]);
  });

  it("leaves a job that has already succeeded alone", async () => {
    const job = await seedBackupJob({ status: "succeeded", attempts: 1, finished_at: isoSecondsAgo(1) });
    const d = await deliver([{ job_id: job.id }], { queue: DEAD_LETTERS });
    expect(d.acked()).toBe(true);
    expect(await jobRow(job.id)).toEqual(job);
  });
});

describe("concurrency declared per kind", () => {
  it("runs 20 backup requests of one database one at a time: the rest wait, say why, and none is lost", async () => {
    const answers = [];
    for (let i = 0; i < 20; i++) answers.push(await api("POST", "/backup/database", { body: { type: "full" } }));
    expect(answers.every((a) => a.status === 202)).toBe(true);
    const first = answers[0]!.body.job_id as string;
    expect(answers[0]!.body.queued_behind).toBeUndefined();
    // Every later answer says which job it waits for.
    for (const a of answers.slice(1)) expect(a.body.queued_behind).toBe(first);
    const runner = fakeRunner();
    const sent: unknown[] = [];
    const jobs = { async send(body: unknown) { sent.push(body); } };
    await deliver(answers.map((a) => ({ job_id: a.body.job_id })), { env: { ...runner.env, JOBS: jobs } });
    expect(runner.calls).toHaveLength(1);
    expect(runner.calls[0]!.body).toMatchObject({ kind: "database.backup", job_id: first });
    const waiting = await Promise.all(answers.slice(1).map((a) => jobRow(a.body.job_id)));
    for (const row of waiting) {
      expect(row).toMatchObject({ status: "queued", queued_reason: expect.stringMatching(/same source/) });
    }
    // Each waiting job's message is put back (with a delay), not dropped or retried away.
    expect(sent).toHaveLength(19);
    const view = await api("GET", `/jobs/${answers[1]!.body.job_id}`);
    expect(view.body.queued_reason).toMatch(/one at a time per source/);

    // The first ends: exactly one more starts.
    await catalog().succeedJob(first, { kind: "database.backup" }, new Date());
    await deliver(answers.slice(1).map((a) => ({ job_id: a.body.job_id })), { env: { ...runner.env, JOBS: jobs } });
    expect(runner.calls).toHaveLength(2);
  }, 60_000);

  it("backups of different databases run side by side, up to RUNNER_MAX_JOBS", async () => {
    const vars = { BACKUP_DATABASES: "astrid,sky,lab", DATABASE_URL_SKY: "postgres://b@127.0.0.1:1/sky", DATABASE_URL_LAB: "postgres://b@127.0.0.1:1/lab", RUNNER_MAX_JOBS: "2" };
    const ids: string[] = [];
    for (const database of ["astrid", "sky", "lab"]) ids.push((await api("POST", "/backup/database", { body: { database }, env: vars })).body.job_id);
    const runner = fakeRunner();
    const jobs = { async send() {} };
    await deliver(ids.map((job_id) => ({ job_id })), { env: { ...vars, ...runner.env, JOBS: jobs } });
    expect(runner.calls.map((c) => c.body.database)).toEqual(["astrid", "sky"]);
    expect(await jobRow(ids[2]!)).toMatchObject({ status: "queued", queued_reason: expect.stringMatching(/RUNNER_MAX_JOBS=2/) });
  });
});
