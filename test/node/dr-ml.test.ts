// The ML domain of a drill on real parts: a seeded MLflow server is backed
// up, and a drill restores the backup into a throwaway scratch MLflow server
// (DR_MLFLOW_TRACKING_URI) through the ordinary ML restore; run, artifact and
// model-version counts and every artifact's SHA-256 must equal the manifest,
// and the source server is left exactly as it was.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMlflow, type MlflowServer } from "../../runner/dev/mlflow.ts";
import { describeMlflow, Mlflow, seedMlflow } from "../../runner/dev/mlflow-seed.ts";
import { psql } from "../../runner/dev/postgres.ts";
import { createDatabase, dropDatabase, scratchName, startTestStack, testPg, type TestStack } from "../support/fixture.ts";

const pg = testPg();
const dbName = scratchName("drml");
let stack: TestStack;
let source: MlflowServer;
let scratch: MlflowServer;

beforeAll(async () => {
  [source, scratch] = await Promise.all([startMlflow(), startMlflow()]);
  await seedMlflow(new Mlflow(source.url));
  const dbUrl = await createDatabase(pg, dbName);
  await psql(dbUrl, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100);");
  stack = await startTestStack({
    vars: { DATABASE_URL: dbUrl, MLFLOW_TRACKING_URI: source.url, DR_MLFLOW_TRACKING_URI: scratch.url, DR_DOMAINS: "ml,catalog" },
  });
});

afterAll(async () => {
  await stack?.dispose();
  await Promise.all([source?.stop(), scratch?.stop()]);
  await dropDatabase(pg, dbName);
});

describe("DR drill, ML domain", () => {
  it("restores the newest ML backup into the scratch MLflow server and checks counts and artifact hashes", async () => {
    const backup = await stack.api("POST", "/backup/ml", {});
    expect(backup.status).toBe(202);
    const backed = await stack.waitForJob(backup.body.job_id);
    expect(backed.status).toBe("succeeded");
    const before = await describeMlflow(new Mlflow(source.url));

    const started = await stack.api("POST", "/backup/test-recovery", {});
    expect(started.status).toBe(202);
    expect(started.body.restore_points.ml).toEqual([{ server: "mlflow", backup_id: backed.backup_id }]);
    const job = await stack.waitForJob(started.body.job_id, 240_000);
    expect(job.error).toBeUndefined();
    const run = (await stack.api("GET", `/dr/runs/${job.id}`)).body;
    expect(run.status).toBe("passed");
    const ml = run.results.find((d: any) => d.domain === "ml");
    expect(ml).toMatchObject({ source: "mlflow", restore_point: backed.backup_id, passed: true, problems: [] });
    expect(ml.details.counts).toMatchObject({
      runs: backed.result.counts.runs, artifacts: backed.result.counts.artifacts, model_versions: backed.result.counts.model_versions,
    });
    expect(ml.details.counts.artifacts).toBeGreaterThan(0);
    expect(run.results.map((d: any) => d.domain).sort()).toEqual(["catalog", "ml"]);
    // The source server is untouched; the scratch one now holds the restored runs.
    expect(await describeMlflow(new Mlflow(source.url))).toEqual(before);
    const restored = await new Mlflow(scratch.url).post("runs/search", { experiment_ids: ["0", "1", "2", "3", "4"], max_results: 100 });
    expect((restored.runs ?? []).length).toBe(backed.result.counts.runs);

    // The mlflow_lost scenario is the same recovery, alone: restoring again adds nothing to the scratch server.
    const sim = await stack.api("POST", "/dr/scenarios/mlflow_lost/simulate", {});
    expect(sim.status).toBe(202);
    await stack.waitForJob(sim.body.job_id, 240_000);
    const scenario = (await stack.api("GET", `/dr/runs/${sim.body.job_id}`)).body;
    expect(scenario).toMatchObject({ scenario: "mlflow_lost", status: "passed", runbook: "docs/runbook.md#scenario-mlflow-lost" });
    expect(scenario.results.map((d: any) => d.domain)).toEqual(["ml"]);
    const again = await new Mlflow(scratch.url).post("runs/search", { experiment_ids: ["0", "1", "2", "3", "4"], max_results: 100 });
    expect((again.runs ?? []).length).toBe(backed.result.counts.runs);
  });
});
