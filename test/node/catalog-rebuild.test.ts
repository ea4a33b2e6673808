// D1 lost: the catalog is rebuilt from the manifests in R2, and every backup
// is listed and restorable again.
import { rmSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appendObservations, seedAstronomyDatabase } from "../../runner/dev/astronomy-seed.ts";
import { tableFingerprints } from "../../runner/dev/compare.ts";
import { ROOT } from "../../runner/dev/stack.ts";
import { createDatabase, dropDatabase, scratchName, startTestStack, testPg, type TestStack } from "../support/fixture.ts";

const pg = testPg();
const sourceName = scratchName("rebuild_src");
const targets: string[] = [];
let sourceUrl: string;
let stack: TestStack;

beforeAll(async () => {
  sourceUrl = await createDatabase(pg, sourceName);
  await seedAstronomyDatabase(sourceUrl, { targetBytes: 12 * 1024 * 1024 });
  stack = await startTestStack({ vars: { DATABASE_URL: sourceUrl } });
});

afterAll(async () => {
  await stack?.dispose();
  for (const name of [sourceName, ...targets]) await dropDatabase(pg, name);
});

async function backup(type: string) {
  const { body } = await stack.api("POST", "/backup/database", { type });
  const job = await stack.waitForJob(body.job_id);
  expect(job.error).toBeUndefined();
  return job.backup_id as string;
}

describe("catalog rebuild", () => {
  it("wipe D1, rebuild from R2 with the CLI: every backup listed again, and restorable", async () => {
    await backup("full");
    const atSecond = await (async () => {
      await appendObservations(sourceUrl, 0.05);
      return tableFingerprints(sourceUrl);
    })();
    const second = await backup("incremental");
    await backup("archive");
    const before = (await stack.api("GET", "/backup/database?limit=100")).body.backups;
    expect(before).toHaveLength(3);

    // Lose the catalog: stop, delete D1's local state, start again on the same R2.
    await stack.stop();
    rmSync(join(stack.persistDir, "v3/d1"), { recursive: true, force: true });
    const dir = stack.dir;
    stack = await startTestStack({ vars: { DATABASE_URL: sourceUrl }, reuse: { dir, secrets: stack.secrets } });
    expect((await stack.api("GET", "/backup/database")).body.backups).toEqual([]);

    const out = execFileSync(process.execPath, [join(ROOT, "runner/cli/catalog-rebuild.ts"), "--url", stack.workerUrl], {
      env: { ...process.env, ADMIN_TOKEN: stack.secrets.ADMIN_TOKEN }, encoding: "utf8",
    });
    expect(out).toContain("rows restored: 3");

    const after = (await stack.api("GET", "/backup/database?limit=100")).body.backups;
    const essentials = (b: any) => ({
      backup_id: b.backup_id, database: b.database, type: b.type, status: b.status, logical_bytes: b.logical_bytes,
      stored_bytes: b.stored_bytes, new_stored_bytes: b.new_stored_bytes, chunk_count: b.chunk_count, created_at: b.created_at,
    });
    expect(after.map(essentials)).toEqual(before.map(essentials));

    // A second rebuild finds everything present and adds nothing.
    const again = await stack.api("POST", "/catalog/rebuild", {});
    expect(again.body).toMatchObject({ scanned: 3, restored: [], present: 3, invalid: [] });

    const target = scratchName("rebuild_dst");
    targets.push(target);
    const restore = await stack.api("POST", `/backups/${second}/restore`, { target: pg.url(target) });
    expect((await stack.waitForJob(restore.body.job_id)).status).toBe("succeeded");
    expect(await tableFingerprints(pg.url(target))).toEqual(atSecond);
  });
});
