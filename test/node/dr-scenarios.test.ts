// Disaster scenarios and validate_data_consistency on the real parts. Each
// simulated scenario runs at least once: database_lost, table_dropped,
// bad_migration, bucket_deleted, objects_overwritten, region_outage and
// catalog_lost pass on scratch copies (mlflow_lost: dr-ml.test.ts) with
// steps, timings, data lost and a runbook link; key_holder_unavailable restores
// with the escrow identity alone; runner_lost is listed and refused as
// not simulated (dr-e2e.test.ts kills a drill's runner for real). A backup whose consistency record disagrees with what restores
// fails the drill, naming the table.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedAstronomyDatabase } from "../../runner/dev/astronomy-seed.ts";
import { psql } from "../../runner/dev/postgres.ts";
import { pseudoRandom } from "../../runner/dev/pseudo-random.ts";
import { ageKeyPair } from "../../runner/dev/secrets.ts";
import { createDatabase, dropDatabase, scratchName, startTestStack, testPg, type TestStack } from "../support/fixture.ts";
import { tamperWithConsistency } from "../support/tamper.ts";

const pg = testPg();
const sourceName = scratchName("drsc_src");
let sourceUrl: string;
let stack: TestStack;
let backupId: string;

const scratchDatabases = async () =>
  (await psql(pg.url("postgres"), "SELECT datname FROM pg_database WHERE datname LIKE 'astrid\\_dr\\_%'")).split("\n").filter(Boolean);

async function simulate(name: string, body: unknown = {}) {
  const res = await stack.api("POST", `/dr/scenarios/${name}/simulate`, body);
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  await stack.waitForJob(res.body.job_id, 180_000);
  return (await stack.api("GET", `/dr/runs/${res.body.job_id}`)).body;
}

beforeAll(async () => {
  sourceUrl = await createDatabase(pg, sourceName);
  await seedAstronomyDatabase(sourceUrl, { targetBytes: 12 * 1024 * 1024 });
  // Backups are encrypted to the usual key and to an escrow key; the escrow identity is set for the rehearsal only.
  const [usual, escrow] = await Promise.all([ageKeyPair(), ageKeyPair()]);
  stack = await startTestStack({
    vars: {
      // Nothing here kills a runner: a lease long enough that a loaded machine's slow heartbeat never loses a drill.
      DATABASE_URL: sourceUrl, JOB_LEASE_SECONDS: "30",
      BACKUP_ENCRYPTION_KEY: `${usual.recipient},${escrow.recipient}`, AGE_IDENTITY: usual.identity, AGE_ESCROW_IDENTITY: escrow.identity,
      // A repository from before manifest MACs: the consistency record edited below must reach the drill's own
      // check. With a MAC key the edited manifest is refused before that (security-manifest.test.ts shows it).
      MANIFEST_MAC_KEY: "",
    },
  });
  for (let i = 0; i < 4; i++) {
    const res = await fetch(`${stack.workerUrl}/storage/objects/astrid-data/raw/f${i}.bin`, {
      method: "PUT", body: pseudoRandom(20_000 + i, i + 7), headers: { authorization: `Bearer ${stack.secrets.ADMIN_TOKEN}` },
    });
    expect(res.status).toBe(201);
  }
  const snap = await stack.api("POST", "/backup/storage", { bucket: "astrid-data" });
  expect((await stack.waitForJob(snap.body.jobs[0].job_id)).status).toBe("succeeded");
  const backup = await stack.api("POST", "/backup/database", { type: "full" });
  expect((await stack.waitForJob(backup.body.job_id)).status).toBe("succeeded");
  backupId = backup.body.backup_id;
  for (let i = 0; i < 300; i++) {
    if ((await stack.api("GET", `/backups/${backupId}`)).body.verify_status === "passed") break;
    await new Promise((r) => setTimeout(r, 100));
  }
});

afterAll(async () => {
  await stack?.dispose();
  await dropDatabase(pg, sourceName);
  for (const name of await scratchDatabases()) await dropDatabase(pg, name);
});

describe("disaster scenarios", () => {
  it("lists the ten scenarios with their runbook sections", async () => {
    const { scenarios } = (await stack.api("GET", "/dr/scenarios", undefined, stack.secrets.VIEWER_TOKEN)).body;
    expect(scenarios.map((s: any) => s.name).sort()).toEqual([
      "bad_migration", "bucket_deleted", "catalog_lost", "database_lost", "key_holder_unavailable", "mlflow_lost",
      "objects_overwritten", "region_outage", "runner_lost", "table_dropped",
    ]);
    expect(scenarios.find((s: any) => s.name === "table_dropped")).toMatchObject({ simulated: true, runbook: "docs/runbook.md#scenario-table-dropped" });
  });

  it("database_lost: restores into a new scratch database, validates it, reports steps, data lost and the runbook", async () => {
    const run = await simulate("database_lost");
    expect(run).toMatchObject({ kind: "scenario:database_lost", scenario: "database_lost", status: "passed", runbook: "docs/runbook.md#scenario-database-lost" });
    expect(run.steps.map((s: any) => s.name)).toEqual([`restore database astrid from ${backupId}`, "validate database astrid"]);
    expect(run.steps.every((s: any) => s.ok && s.ms >= 0)).toBe(true);
    expect(run.data_loss_seconds).toBeGreaterThanOrEqual(0);
    expect(await scratchDatabases()).toEqual([]);
  });

  it("table_dropped: drops the table on a scratch copy and brings it back with pg_restore -t", async () => {
    const before = await psql(sourceUrl, "SELECT count(*) FROM public.observations");
    const run = await simulate("table_dropped", { table: "public.observations" });
    expect(run.status, JSON.stringify(run.errors)).toBe("passed");
    const names = run.steps.map((s: any) => s.name);
    expect(names).toContain("simulate: DROP TABLE public.observations");
    expect(names).toContain("recover: pg_restore -n public -t observations from the backup");
    const validated = run.steps.find((s: any) => s.name.startsWith("validate: public.observations"));
    expect(validated).toMatchObject({ ok: true, detail: `${before.trim()} rows` });
    // The source still has its table: the drop happened on the scratch copy.
    expect(await psql(sourceUrl, "SELECT count(*) FROM public.observations")).toBe(before);
    expect(await scratchDatabases()).toEqual([]);
  });

  it("bad_migration: restores the newest verified point before the given time; none before it fails with the reason", async () => {
    const ok = await simulate("bad_migration", { before: new Date(Date.now() + 60_000).toISOString() });
    expect(ok.status, JSON.stringify(ok.errors)).toBe("passed");
    expect(ok.results[0].restore_point).toBe(backupId);
    const none = await simulate("bad_migration", { before: "2000-01-01T00:00:00Z" });
    expect(none.status).toBe("failed");
    expect(none.errors[0]).toContain("no verified backup of astrid before 2000-01-01T00:00:00Z");
    expect((await stack.api("POST", "/dr/scenarios/bad_migration/simulate", {})).status).toBe(400);
  });

  it("bucket_deleted: every object of the snapshot comes back into a scratch prefix with its bytes", async () => {
    const run = await simulate("bucket_deleted");
    expect(run.status).toBe("passed");
    expect(run.results[0].details).toMatchObject({ objects_in_snapshot: 4, objects_checked: 4 });
  });

  it("objects_overwritten: objects overwritten on a scratch copy come back from the version store as of before", async () => {
    const run = await simulate("objects_overwritten");
    expect(run.status, JSON.stringify(run.errors)).toBe("passed");
    expect(run.results[0].details.objects_checked).toBe(4);
    expect(run.steps.map((s: any) => s.name)).toContain("simulate: overwrite every copied object with bad bytes");
    // The source is untouched.
    const res = await fetch(`${stack.workerUrl}/storage/objects/astrid-data/raw/f0.bin`, { headers: { authorization: `Bearer ${stack.secrets.ADMIN_TOKEN}` } });
    expect(Buffer.from(await res.arrayBuffer()).equals(Buffer.from(pseudoRandom(20_000, 7)))).toBe(true);
  });

  it("region_outage: the replica serves every object of the source, drift 0", async () => {
    const run = await simulate("region_outage");
    expect(run.status, JSON.stringify(run.errors)).toBe("passed");
    expect(run.results[0]).toMatchObject({ source: "astrid-data -> astrid-data-replica", details: { objects: 4, drift: 0 } });
  });

  it("catalog_lost: a rebuild from R2 equals the live catalog", async () => {
    const run = await simulate("catalog_lost");
    expect(run.status).toBe("passed");
    expect(run.results[0].details.manifests).toBe(run.results[0].details.live_rows);
  });

  it("key_holder_unavailable: restores with the escrow identity alone; unsimulated and unknown scenarios are refused", async () => {
    const run = await simulate("key_holder_unavailable");
    expect(run.status, JSON.stringify(run.errors)).toBe("passed");
    expect(run.results[0]).toMatchObject({ domain: "database", restore_point: backupId, passed: true });
    const refused = await stack.api("POST", "/dr/scenarios/runner_lost/simulate", {});
    expect(refused.status).toBe(422);
    expect(refused.body.error.code).toBe("not_implemented");
    expect((await stack.api("POST", "/dr/scenarios/nope/simulate", {})).status).toBe(404);
    expect((await stack.api("POST", "/dr/scenarios/table_dropped/simulate", { table: "x; drop" })).status).toBe(400);
  });
});

describe("validate_data_consistency", () => {
  it("a backup whose consistency record disagrees with what restores fails the drill, naming the table", async () => {
    tamperWithConsistency(stack.persistDir, backupId, "public.observations");
    const res = await stack.api("POST", "/backup/test-recovery", {});
    const job = await stack.waitForJob(res.body.job_id, 180_000);
    expect(job.status).toBe("failed");
    const run = (await stack.api("GET", `/dr/runs/${res.body.job_id}`)).body;
    const db = run.results.find((d: any) => d.domain === "database");
    expect(db.problems).toEqual([expect.stringMatching(/^table public\.observations: same \d+ rows counted but their content checksum differs$/)]);
    expect(await scratchDatabases()).toEqual([]);
  });
});
