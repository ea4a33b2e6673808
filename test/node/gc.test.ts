// Garbage collection on the real stack: it removes what no manifest
// references, keeps what is younger than the grace period, changes nothing in
// a dry run, and never runs under a backup that may still reference chunks.
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedAstronomyDatabase } from "../../runner/dev/astronomy-seed.ts";
import { tableFingerprints } from "../../runner/dev/compare.ts";
import { createDatabase, dropDatabase, scratchName, startTestStack, testPg, type TestStack } from "../support/fixture.ts";

const pg = testPg();
const sourceName = scratchName("gc_src");
const targets: string[] = [];
let sourceUrl: string;
let stack: TestStack;

beforeAll(async () => {
  sourceUrl = await createDatabase(pg, sourceName);
  await seedAstronomyDatabase(sourceUrl, { targetBytes: 120 * 1024 * 1024 });
  stack = await startTestStack({ vars: { DATABASE_URL: sourceUrl, JOB_LEASE_SECONDS: "3" } });
});

afterAll(async () => {
  await stack?.dispose();
  for (const name of [sourceName, ...targets]) await dropDatabase(pg, name);
});

const blobCount = () => readdirSync(join(stack.persistDir, "v3/r2/astrid-backups/blobs")).length;

async function submit(path: string, body: unknown) {
  const res = await stack.api("POST", path, body);
  expect(res.status).toBe(202);
  return res.body.job_id as string;
}

/** Until the job has uploaded at least one pack (progress.chunks counts chunks in uploaded packs). */
async function waitForProgress(jobId: string) {
  for (let i = 0; i < 400; i++) {
    const { body } = await stack.api("GET", `/jobs/${jobId}`);
    if (body.progress?.chunks > 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("no progress");
}

async function gc(grace_minutes: number, dry_run = false) {
  const job = await stack.waitForJob(await submit("/repository/gc", { grace_minutes, dry_run }));
  expect(job.error).toBeUndefined();
  return job.result;
}

describe("garbage collection", () => {
  let kept: string;

  it("collects the chunks of a backup that died, after the grace period, and only then", async () => {
    kept = (await stack.waitForJob(await submit("/backup/database", { type: "full" }))).backup_id;
    // An archive writes every pack afresh; killing the runner leaves those it uploaded unreferenced.
    const doomed = await submit("/backup/database", { type: "archive" });
    await waitForProgress(doomed);
    await stack.killRunner("SIGKILL");
    expect((await stack.waitForJob(doomed, 30_000)).error.code).toBe("runner_lost");
    await stack.startRunner();

    const young = await gc(60);
    expect(young.deleted_objects).toBe(0);
    expect(young.kept_young).toBeGreaterThan(0);

    const blobs = blobCount();
    const dry = await gc(0, true);
    expect(dry).toMatchObject({ dry_run: true, kept_young: 0 });
    expect(dry.deleted_objects).toBe(young.kept_young);
    expect(dry.reclaimed_bytes).toBeGreaterThan(0);
    expect(blobCount()).toBe(blobs);

    const real = await gc(0);
    expect(real.deleted_objects).toBe(dry.deleted_objects);
    expect(real.reclaimed_bytes).toBe(dry.reclaimed_bytes);
    expect(blobCount()).toBe(blobs - real.deleted_objects);

    expect((await gc(0)).deleted_objects).toBe(0);
  });

  it("leaves every listed backup intact: it verifies and restores", async () => {
    const verify = await stack.waitForJob(await submit(`/backups/${kept}/verify`, { depth: "quick" }));
    expect(verify.result).toMatchObject({ ok: true });
    const target = scratchName("gc_dst");
    targets.push(target);
    const restore = await stack.waitForJob(await submit(`/backups/${kept}/restore`, { target: pg.url(target) }));
    expect(restore.status).toBe("succeeded");
    expect(await tableFingerprints(pg.url(target))).toEqual(await tableFingerprints(sourceUrl));
  });

  it("waits while a backup runs, then collects nothing that backup uses", async () => {
    const backupJob = await submit("/backup/database", { type: "archive" });
    await waitForProgress(backupJob);
    const gcJob = await submit("/repository/gc", { grace_minutes: 0 });
    // While the backup runs, garbage collection is held back in the queue.
    for (let i = 0; i < 10; i++) {
      const [b, g] = await Promise.all([stack.api("GET", `/jobs/${backupJob}`), stack.api("GET", `/jobs/${gcJob}`)]);
      if (b.body.status !== "running") break;
      expect(g.body.status).toBe("queued");
      await new Promise((r) => setTimeout(r, 100));
    }
    const backup = await stack.waitForJob(backupJob);
    expect(backup.status).toBe("succeeded");
    const collected = await stack.waitForJob(gcJob, 60_000);
    expect(collected.status).toBe("succeeded");
    expect(new Date(collected.started_at).getTime()).toBeGreaterThanOrEqual(new Date(backup.finished_at).getTime());
    expect(collected.result.deleted_objects).toBe(0);

    const verify = await stack.waitForJob(await submit(`/backups/${backup.backup_id}/verify`, { depth: "quick" }));
    expect(verify.result).toMatchObject({ ok: true });
  });
});
