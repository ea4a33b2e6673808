// End to end on the real parts: cron -> Queue -> runner -> R2 -> catalog ->
// verify -> restore into a new database, compared table by table with the
// source as it was when each backup was taken.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appendObservations, seedAstronomyDatabase, updateObservations } from "../../runner/dev/astronomy-seed.ts";
import { tableFingerprints } from "../../runner/dev/compare.ts";
import { createDatabase, dropDatabase, scratchName, startTestStack, testPg, type TestStack } from "../support/fixture.ts";

const pg = testPg();
const sourceName = scratchName("e2e_src");
const scratch: string[] = [];
let sourceUrl: string;
let stack: TestStack;

async function restoreInto(backupId: string, replace = false) {
  const name = scratchName("e2e_dst");
  scratch.push(name);
  const target = pg.url(name);
  const { status, body } = await stack.api("POST", `/backups/${backupId}/restore`, { target, replace });
  expect(status).toBe(202);
  const job = await stack.waitForJob(body.job_id);
  expect(job.error).toBeUndefined();
  expect(job.status).toBe("succeeded");
  expect(JSON.stringify(job)).not.toContain(target); // the URL is sealed, never echoed
  return target;
}

async function backup(type: "full" | "incremental" | "archive") {
  const { status, body } = await stack.api("POST", "/backup/database", { type });
  expect(status).toBe(202);
  const job = await stack.waitForJob(body.job_id);
  expect(job.error).toBeUndefined();
  return (await stack.api("GET", `/backups/${job.backup_id}`)).body;
}

beforeAll(async () => {
  sourceUrl = await createDatabase(pg, sourceName);
  await seedAstronomyDatabase(sourceUrl, { targetBytes: 24 * 1024 * 1024 });
  stack = await startTestStack({ vars: { DATABASE_URL: sourceUrl } });
});

afterAll(async () => {
  await stack?.dispose();
  for (const name of [sourceName, ...scratch]) await dropDatabase(pg, name);
});

describe("database backup, end to end", () => {
  it("the 02:00 cron backs up, verifies and restores into a new database equal to the source", async () => {
    const before = await tableFingerprints(sourceUrl);
    expect(Object.keys(before).length).toBeGreaterThan(5);

    await stack.triggerCron("0 2 * * *");
    let job: any;
    for (let i = 0; i < 100 && !job; i++) {
      job = (await stack.api("GET", "/jobs?kind=database.backup")).body.jobs[0];
      if (!job) await new Promise((r) => setTimeout(r, 100));
    }
    expect(job).toBeDefined();
    const done = await stack.waitForJob(job.id);
    expect(done.status).toBe("succeeded");
    expect(done.result.logical_bytes).toBeGreaterThan(1_000_000);

    const list = (await stack.api("GET", "/backup/database", undefined, stack.secrets.VIEWER_TOKEN)).body;
    expect(list.backups).toHaveLength(1);
    const listed = list.backups[0];
    expect(listed).toMatchObject({ backup_id: done.backup_id, database: "astrid", type: "full", status: "completed" });
    expect(listed.stored_bytes).toBeLessThan(listed.logical_bytes); // compressed

    const verify = await stack.api("POST", `/backups/${done.backup_id}/verify`, { depth: "full" });
    const verified = await stack.waitForJob(verify.body.job_id);
    expect(verified.status).toBe("succeeded");
    expect(verified.result).toMatchObject({ ok: true, depth: "full", problems: [] });
    const after = (await stack.api("GET", `/backups/${done.backup_id}`)).body;
    expect(after).toMatchObject({ verify_status: "passed", verify_depth: "full" });
    expect(after.verified_at).toBeTruthy();

    const target = await restoreInto(done.backup_id);
    expect(await tableFingerprints(target)).toEqual(before);
    expect((await stack.api("GET", `/backups/${done.backup_id}`)).body.last_restore_ms).toBeGreaterThan(0);
  });

  it("an incremental after a change stores only new chunks and restores the changed state; the earlier backup still restores the old one", async () => {
    const first = await backup("full");
    const atFirst = await tableFingerprints(sourceUrl);
    await appendObservations(sourceUrl, 0.01);
    await updateObservations(sourceUrl, 0.01, "newest");
    const atSecond = await tableFingerprints(sourceUrl);
    expect(atSecond).not.toEqual(atFirst);

    const incremental = await backup("incremental");
    expect(incremental.type).toBe("incremental");
    expect(incremental.new_stored_bytes).toBeLessThan(incremental.stored_bytes * 0.5);

    expect(await tableFingerprints(await restoreInto(incremental.backup_id))).toEqual(atSecond);
    expect(await tableFingerprints(await restoreInto(first.backup_id))).toEqual(atFirst);
  });

  it("an archive shares no chunks with the deduplicated store and restores on its own", async () => {
    const archive = await backup("archive");
    expect(archive.type).toBe("archive");
    expect(archive.new_stored_bytes).toBe(archive.stored_bytes); // everything written afresh
    expect(await tableFingerprints(await restoreInto(archive.backup_id))).toEqual(await tableFingerprints(sourceUrl));
  });

  it("refuses to restore over a non-empty database unless replace is set, and then replaces it", async () => {
    const [latest] = (await stack.api("GET", "/backup/database?type=full&limit=1")).body.backups;
    const busy = scratchName("e2e_busy");
    scratch.push(busy);
    const busyUrl = await createDatabase(pg, busy);
    const { psql } = await import("../../runner/dev/postgres.ts");
    await psql(busyUrl, "CREATE TABLE precious (id int); INSERT INTO precious VALUES (1);");

    const refused = await stack.api("POST", `/backups/${latest.backup_id}/restore`, { target: busyUrl });
    const refusedJob = await stack.waitForJob(refused.body.job_id);
    expect(refusedJob.status).toBe("failed");
    expect(refusedJob.error.code).toBe("target_not_empty");
    expect(await psql(busyUrl, "SELECT count(*) FROM precious")).toBe("1\n");

    const replaced = await stack.api("POST", `/backups/${latest.backup_id}/restore`, { target: busyUrl, replace: true });
    const replacedJob = await stack.waitForJob(replaced.body.job_id);
    expect(replacedJob.error).toBeUndefined();
    const restored = await tableFingerprints(busyUrl);
    expect(restored["public.observations"]).toBeDefined();
  });

  it("lists newest first and pages with a cursor", async () => {
    const page1 = (await stack.api("GET", "/backup/database?limit=2")).body;
    expect(page1.backups).toHaveLength(2);
    expect(page1.next_cursor).toBeTruthy();
    const page2 = (await stack.api("GET", `/backup/database?limit=10&cursor=${page1.next_cursor}`)).body;
    const all = [...page1.backups, ...page2.backups];
    expect(new Set(all.map((b: any) => b.backup_id)).size).toBe(all.length);
    const times = all.map((b: any) => b.created_at);
    expect([...times].sort().reverse()).toEqual(times);
  });
});
