// Issue #12, key rotation must mean something: after BACKUP_ENCRYPTION_KEY
// changes, the first backup stores every chunk afresh, encrypted to the new
// recipient (it does not reuse the parent's chunks, which were encrypted to
// the retired one), so the retired identity cannot read it; the next backup
// deduplicates again. Checked end to end through the real stack, and with the
// break-glass scripts of docs/format.md (they run age with exactly the
// identity they are given).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedAstronomyDatabase } from "../../runner/dev/astronomy-seed.ts";
import { ageKeyPair } from "../../runner/dev/secrets.ts";
import { createDatabase, dropDatabase, scratchName, startTestStack, testPg, type TestStack } from "../support/fixture.ts";
import { run, scriptFromDoc, succeeded } from "../support/doc-scripts.ts";
import { serveLocalBucket } from "../support/local-state.ts";

const MiB = 1024 * 1024;

describe("key rotation", () => {
  const pg = testPg();
  const databases: string[] = [];
  let stack: TestStack | undefined;
  let dir: string | undefined;
  let work: string;
  let sourceUrl: string;
  const jobs: Record<string, any> = {};
  let oldIdentity: string;
  let newIdentity: string;

  async function scratchDatabase(label: string): Promise<string> {
    const name = scratchName(label);
    databases.push(name);
    return createDatabase(pg, name);
  }

  async function backup(type: "full" | "incremental") {
    const submitted = await stack!.api("POST", "/backup/database", { type });
    expect(submitted.status).toBe(202);
    const job = await stack!.waitForJob(submitted.body.job_id);
    if (job.status !== "succeeded") throw new Error(`${type} backup job ${job.status}: ${JSON.stringify(job)}`);
    return job;
  }

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "astrid-rotation-"));
    sourceUrl = await scratchDatabase("rot_src");
    await seedAstronomyDatabase(sourceUrl, { targetBytes: 8 * MiB });

    stack = await startTestStack({ vars: { DATABASE_URL: sourceUrl } });
    dir = stack.dir;
    const secrets = stack.secrets;
    oldIdentity = secrets.AGE_IDENTITY;
    jobs.before = await backup("full");
    await stack.stop();

    // Rotation as the runbook does it: a new recipient; the identities list keeps the old one for old backups.
    const next = await ageKeyPair();
    newIdentity = next.identity;
    stack = await startTestStack({
      reuse: { dir, secrets: { ...secrets, BACKUP_ENCRYPTION_KEY: next.recipient, AGE_IDENTITY: `${next.identity},${oldIdentity}` } },
      vars: { DATABASE_URL: sourceUrl },
    });
    jobs.first = await backup("incremental");
    jobs.second = await backup("incremental");
    await stack.stop();
  }, 400_000);

  afterAll(async () => {
    for (const name of databases) await dropDatabase(pg, name).catch(() => {});
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (work) rmSync(work, { recursive: true, force: true });
  }, 60_000);

  it("the first backup after rotation stores every chunk afresh; the next one deduplicates again", () => {
    const [before, first, second] = [jobs.before.result, jobs.first.result, jobs.second.result];
    expect(before.new_chunk_count).toBe(before.chunk_count);
    // Nothing changed in the database: without rotation this would be (almost) nothing new.
    expect(first.chunk_count).toBe(before.chunk_count);
    expect(first.new_chunk_count).toBe(first.chunk_count);
    // Deduplication resumes: only the dump's header chunk (it carries pg_dump's timestamp) is new.
    expect(second.new_chunk_count).toBeLessThanOrEqual(2);
    expect(second.chunk_count).toBeGreaterThanOrEqual(4);
  });

  it("the retired identity cannot read the first backup after rotation; the new one can, and the old one still reads the old backup", async () => {
    const fetchScript = join(work, "fetch-backup.sh");
    const restoreScript = join(work, "manual-restore.sh");
    writeFileSync(fetchScript, scriptFromDoc("fetch-backup.sh"), { mode: 0o755 });
    writeFileSync(restoreScript, scriptFromDoc("manual-restore.sh"), { mode: 0o755 });
    const objects = join(work, "objects");
    const bucket = await serveLocalBucket(stack!.persistDir, join(work, "fetched.log"));
    const fetchBackup = async (id: string) => succeeded(`fetch ${id}`, await run("bash", [fetchScript, id, objects], { env: bucket.env })).stdout.trim();
    const identityFile = (label: string, identity: string) => {
      const file = join(work, `${label}.txt`);
      writeFileSync(file, `${identity}\n`, { mode: 0o600 });
      return file;
    };
    const restore = async (manifest: string, identity: string, label: string) =>
      run("bash", [restoreScript, manifest, objects, identity, await scratchDatabase(label)], { cwd: work, env: { DUMP_FILE: join(work, `${label}.dump`) } });

    const oldFile = identityFile("old", oldIdentity);
    const newFile = identityFile("new", newIdentity);
    try {
      const firstAfter = await fetchBackup(jobs.first.backup_id);

      const refused = await restore(firstAfter, oldFile, "rot_old");
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/chunk 1\/\d+ \(.*\): does not decrypt/);
      succeeded("restore with the new identity", await restore(firstAfter, newFile, "rot_new"));
      succeeded("old backup, old identity", await restore(await fetchBackup(jobs.before.backup_id), oldFile, "rot_before"));
    } finally {
      await bucket.close();
    }
  });
});
