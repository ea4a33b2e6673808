// The parallel restore mode (runner/database/spool.ts): a new target database
// is restored from a checked local copy of the dump by pg_restore -j; a
// replace keeps the single transaction; the spool is bounded and cleaned up.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedAstronomyDatabase } from "../../runner/dev/astronomy-seed.ts";
import { tableFingerprints } from "../../runner/dev/compare.ts";
import { spoolRefusal, spoolSettings } from "../../runner/database/spool.ts";
import { createDatabase, dropDatabase, scratchName, startTestStack, testPg, type TestStack } from "../support/fixture.ts";

const pg = testPg();
const sourceName = scratchName("par_src");
const scratch: string[] = [];
const spoolDir = mkdtempSync(join(tmpdir(), "astrid-spool-test-"));
let sourceUrl: string;
let stack: TestStack;

beforeAll(async () => {
  sourceUrl = await createDatabase(pg, sourceName);
  await seedAstronomyDatabase(sourceUrl, { targetBytes: 16 * 1024 * 1024 });
  stack = await startTestStack({
    vars: { DATABASE_URL: sourceUrl },
    runnerEnv: { RESTORE_PARALLEL_JOBS: "2", RESTORE_SPOOL_MAX_BYTES: String(1024 ** 3), RESTORE_SPOOL_DIR: spoolDir },
  });
});

afterAll(async () => {
  await stack?.dispose();
  for (const name of [sourceName, ...scratch]) await dropDatabase(pg, name);
  rmSync(spoolDir, { recursive: true, force: true });
});

const runnerLog = () => readFileSync(join(stack.dir, "runner.log"), "utf8");

async function restore(backupId: string, target: string, replace: boolean) {
  const { status, body } = await stack.api("POST", `/backups/${backupId}/restore`, { target, replace });
  expect(status).toBe(202);
  return stack.waitForJob(body.job_id);
}

describe("parallel restore mode", () => {
  it("restores a new database with pg_restore -j from a spooled copy, and a replace in one transaction", async () => {
    const before = await tableFingerprints(sourceUrl);
    const { body } = await stack.api("POST", "/backup/database", { type: "full" });
    const backup = await stack.waitForJob(body.job_id);
    expect(backup.status).toBe("succeeded");

    const name = scratchName("par_dst");
    scratch.push(name);
    const job = await restore(backup.backup_id, pg.url(name), false);
    expect(job.error).toBeUndefined();
    expect(job.status).toBe("succeeded");
    expect(await tableFingerprints(pg.url(name))).toEqual(before);
    expect(runnerLog()).toMatch(new RegExp(`restore ${backup.backup_id}: ${backup.result.logical_bytes} bytes spooled and checked; pg_restore --jobs=2`));
    expect(readdirSync(spoolDir)).toEqual([]); // the copy is gone

    const again = await restore(backup.backup_id, pg.url(name), true);
    expect(again.status).toBe("succeeded");
    expect(runnerLog()).toContain(`restore ${backup.backup_id}: streaming into one transaction, not in parallel: the target database exists`);
    expect(await tableFingerprints(pg.url(name))).toEqual(before);
  });

  it("is off unless both the jobs and the size bound are set, refuses bad settings, and checks size and room first", async () => {
    expect(spoolSettings({})).toBeUndefined();
    expect(spoolSettings({ RESTORE_PARALLEL_JOBS: "4" })).toBeUndefined();
    expect(spoolSettings({ RESTORE_SPOOL_MAX_BYTES: "1000" })).toBeUndefined();
    expect(() => spoolSettings({ RESTORE_PARALLEL_JOBS: "four", RESTORE_SPOOL_MAX_BYTES: "1000" })).toThrow(/RESTORE_PARALLEL_JOBS/);
    const s = spoolSettings({ RESTORE_PARALLEL_JOBS: "4", RESTORE_SPOOL_MAX_BYTES: "1000", RESTORE_SPOOL_DIR: spoolDir })!;
    expect(s).toEqual({ jobs: 4, maxBytes: 1000, dir: spoolDir });
    expect(await spoolRefusal(s, 1000, true)).toBeUndefined();
    expect(await spoolRefusal(s, 1001, true)).toMatch(/larger than RESTORE_SPOOL_MAX_BYTES/);
    expect(await spoolRefusal(s, 10, false)).toMatch(/target database exists/);
    expect(await spoolRefusal({ ...s, maxBytes: 2 ** 52 }, 2 ** 52, true)).toMatch(/bytes free/);
    expect(await spoolRefusal({ ...s, dir: join(spoolDir, "missing") }, 10, true)).toMatch(/unusable/);
  });
});
