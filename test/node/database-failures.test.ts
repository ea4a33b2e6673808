// Failures on the real parts: each must end the job failed with the reason,
// list no backup as good, and leave a retry safe.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedAstronomyDatabase } from "../../runner/dev/astronomy-seed.ts";
import { psql } from "../../runner/dev/postgres.ts";
import { createDatabase, dropDatabase, scratchName, startTestStack, testPg, type TestStack } from "../support/fixture.ts";
import { startFaultProxy, type FaultProxy } from "../support/fault-proxy.ts";
import { tamperWithChunk } from "../support/tamper.ts";

const pg = testPg();
const sourceName = scratchName("fail_src");
const scratch: string[] = [];
let stack: TestStack;
let proxy: FaultProxy;
let sourceUrl: string;

beforeAll(async () => {
  sourceUrl = await createDatabase(pg, sourceName);
  // Big enough that a dump lasts a few seconds, so things can go wrong in the middle of one.
  await seedAstronomyDatabase(sourceUrl, { targetBytes: 160 * 1024 * 1024 });
  proxy = await startFaultProxy();
  stack = await startTestStack({ vars: { DATABASE_URL: sourceUrl, JOB_LEASE_SECONDS: "3", REPOSITORY_URL: `${proxy.url}/repo/v1` } });
  proxy.target = stack.workerUrl;
});

afterAll(async () => {
  await stack?.dispose();
  await proxy?.close();
  for (const name of [sourceName, ...scratch]) await dropDatabase(pg, name);
});

async function startBackup(type: "full" | "archive" = "full") {
  const { status, body } = await stack.api("POST", "/backup/database", { type });
  expect(status).toBe(202);
  return body as { job_id: string; backup_id: string };
}

/** Waits until the job reports dump progress: the failure is then injected mid-dump. */
async function waitForDumpProgress(jobId: string) {
  for (let i = 0; i < 300; i++) {
    const { body } = await stack.api("GET", `/jobs/${jobId}`);
    if (body.progress?.bytes > 0) return;
    if (body.status !== "queued" && body.status !== "running") throw new Error(`job ended early: ${JSON.stringify(body)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("no progress reported");
}

async function listedIds(): Promise<string[]> {
  return (await stack.api("GET", "/backup/database?limit=100")).body.backups.map((b: any) => b.backup_id);
}

describe("failures during a database backup", () => {
  it("runner killed mid-dump: the job fails as runner_lost, nothing is listed, and the next backup succeeds", async () => {
    const { job_id, backup_id } = await startBackup();
    await waitForDumpProgress(job_id);
    await stack.killRunner("SIGKILL");
    const job = await stack.waitForJob(job_id, 30_000);
    expect(job.status).toBe("failed");
    expect(job.error.code).toBe("runner_lost");
    expect(await listedIds()).not.toContain(backup_id);

    await stack.startRunner();
    const retry = await startBackup();
    const done = await stack.waitForJob(retry.job_id);
    expect(done.error).toBeUndefined();
    expect(await listedIds()).toContain(retry.backup_id);
  });

  it("the database going away mid-dump fails the job with the reason", async () => {
    const { job_id, backup_id } = await startBackup();
    await waitForDumpProgress(job_id);
    // Only this test's source database: other runs (a benchmark, a parallel suite) may be dumping too.
    await psql(pg.url("postgres"), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'astrid-backup' AND datname = '${sourceName}'`);
    const job = await stack.waitForJob(job_id);
    expect(job.status).toBe("failed");
    expect(job.error.code).toBe("database_connection_lost");
    expect(job.error.message).toMatch(/pg_dump/);
    expect(await listedIds()).not.toContain(backup_id);
  });

  it("R2 writes failing fail the job after bounded retries and list nothing", async () => {
    proxy.failChunkWrites = true;
    proxy.failedWrites = 0;
    try {
      // An archive writes every pack afresh (a full of an unchanged database may write nothing new).
      const { job_id, backup_id } = await startBackup("archive");
      const job = await stack.waitForJob(job_id);
      expect(job.status).toBe("failed");
      expect(job.error.code).toBe("repository_write_failed");
      expect(job.error.message).toMatch(/503/);
      expect(proxy.failedWrites).toBeGreaterThanOrEqual(4); // retried, then gave up
      expect(proxy.failedWrites).toBeLessThan(40);
      expect(await listedIds()).not.toContain(backup_id);
    } finally {
      proxy.failChunkWrites = false;
    }
  });

  it("a tampered chunk: quick verify names it, the backup is marked corrupt, restore refuses", async () => {
    const { job_id, backup_id } = await startBackup();
    expect((await stack.waitForJob(job_id)).status).toBe("succeeded");
    const tampered = tamperWithChunk(stack.persistDir, backup_id, 1);

    const verify = await stack.api("POST", `/backups/${backup_id}/verify`, { depth: "quick" });
    const verified = await stack.waitForJob(verify.body.job_id);
    expect(verified.status).toBe("failed");
    expect(verified.error, JSON.stringify(verified.error)).toMatchObject({ code: "integrity_error" });
    expect(verified.error.message).toContain(tampered);
    expect(verified.result.problems).toHaveLength(1);
    const row = (await stack.api("GET", `/backups/${backup_id}`)).body;
    expect(row).toMatchObject({ status: "corrupt", verify_status: "failed" });
    expect((await stack.api("GET", "/backup/database?status=completed&limit=100")).body.backups.map((b: any) => b.backup_id)).not.toContain(backup_id);
    // The database did not change since the earlier full backup: it shares the damaged chunk, and is named and marked too.
    const affected: string[] = verified.result.affected_backups;
    expect(affected).toContain(backup_id);
    const others = affected.filter((id) => id !== backup_id);
    expect(others.length).toBeGreaterThan(0);
    for (const id of others) expect((await stack.api("GET", `/backups/${id}`)).body).toMatchObject({ status: "corrupt", verify_status: "failed" });

    const refused = await stack.api("POST", `/backups/${backup_id}/restore`, { target: pg.url(scratchName("never")) });
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe("conflict");
  });

  it("a tampered chunk found only during restore stops it and leaves no partial database behind", async () => {
    // An archive, so that the tampered chunk is this backup's own and not one shared with the test above.
    const { job_id, backup_id } = await startBackup("archive");
    expect((await stack.waitForJob(job_id)).status).toBe("succeeded");
    const tampered = tamperWithChunk(stack.persistDir, backup_id, 2);
    const target = scratchName("fail_dst");
    scratch.push(target);
    const restore = await stack.api("POST", `/backups/${backup_id}/restore`, { target: pg.url(target) });
    const job = await stack.waitForJob(restore.body.job_id);
    expect(job.status).toBe("failed");
    expect(job.error.code).toBe("integrity_error");
    expect(job.error.message).toContain(tampered);
    const exists = await psql(pg.url("postgres"), `SELECT count(*) FROM pg_database WHERE datname = '${target}'`);
    expect(exists.trim()).toBe("0");
  });
});
