// MLflow and training-data backups end to end on real parts: real MLflow
// servers (pinned, pip-installed), the local stack (wrangler dev + runner),
// and a real PostgreSQL for training data. A seeded server is backed up,
// restored into an empty one and compared field by field; then one
// experiment alone, a second restore, a restore after the source is wiped,
// and the failures an operator will meet.
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMlflow, type MlflowServer } from "../../runner/dev/mlflow.ts";
import { describeMlflow, Mlflow, seedMlflow, type SeedSummary } from "../../runner/dev/mlflow-seed.ts";
import { psql } from "../../runner/dev/postgres.ts";
import { createDatabase, dropDatabase, scratchName, startTestStack, testPg, type TestStack } from "../support/fixture.ts";
import { startMlflowGate, type MlflowGate } from "../support/mlflow-gate.ts";

const pg = testPg();
const dbName = scratchName("ml_td");
const restoreDbName = scratchName("ml_td_restore");
const pwned = join(mkdtempSync(join(tmpdir(), "astrid-ml-")), "pwned");
const TOKEN_A = "mlflow-token-a-never-shown-1234";
const GATE_TOKEN = "gate-token-right-0123456789";
let stack: TestStack;
let a: MlflowServer;
let b: MlflowServer;
let c: MlflowServer;
let gate: MlflowGate;
let seed: SeedSummary;
let original: any;
let dbUrl: string;
let restoreDbUrl: string;

beforeAll(async () => {
  [a, b, c] = await Promise.all([startMlflow(), startMlflow(), startMlflow()]);
  seed = await seedMlflow(new Mlflow(a.url));
  original = await describeMlflow(new Mlflow(a.url));
  gate = await startMlflowGate(a.url, GATE_TOKEN);
  dbUrl = await createDatabase(pg, dbName);
  restoreDbUrl = await createDatabase(pg, restoreDbName);
  await psql(dbUrl, `CREATE TABLE labels (id int PRIMARY KEY, label text, confidence real);
    INSERT INTO labels SELECT g, (ARRAY['spiral','elliptical','irregular'])[g % 3 + 1], (g % 100) / 100.0 FROM generate_series(1, 20000) g;`);
  stack = await startTestStack({
    vars: {
      DATABASE_URL: dbUrl,
      ML_SERVERS: "a,b,gated,badtoken,down",
      MLFLOW_TRACKING_URI_A: a.url, MLFLOW_TRACKING_TOKEN_A: TOKEN_A,
      MLFLOW_TRACKING_URI_B: b.url,
      MLFLOW_TRACKING_URI_GATED: gate.url, MLFLOW_TRACKING_TOKEN_GATED: GATE_TOKEN,
      MLFLOW_TRACKING_URI_BADTOKEN: gate.url, MLFLOW_TRACKING_TOKEN_BADTOKEN: "gate-token-wrong-0000000000",
      MLFLOW_TRACKING_URI_DOWN: "http://127.0.0.1:1",
      ML_DATASETS: JSON.stringify({
        galaxy_labels: { database: "astrid", tables: ["public.labels"], queries: [{ name: "confident", sql: "SELECT id, label FROM labels WHERE confidence > 0.5 ORDER BY id" }] },
        sky_images: { r2_prefixes: [{ bucket: "astrid-data", prefix: "raw/" }] },
        // A psql meta-command and a second statement: must run as SQL, i.e. fail, and never reach a shell.
        shell_escape: { database: "astrid", queries: [{ name: "escape", sql: `SELECT 1 AS one\n\\! touch ${pwned}\n` }] },
        two_statements: { database: "astrid", queries: [{ name: "two", sql: "SELECT 1 AS one; DROP TABLE labels" }] },
      }),
    },
  });
});

afterAll(async () => {
  await stack?.dispose();
  await gate?.close();
  await Promise.all([a?.stop(), b?.stop(), c?.stop()]);
  await dropDatabase(pg, dbName);
  await dropDatabase(pg, restoreDbName);
});

async function mlBackup(body: unknown) {
  const res = await stack.api("POST", "/backup/ml", body);
  expect(res.status).toBe(202);
  return stack.waitForJob(res.body.job_id);
}

async function mlRestore(backupId: string, body: unknown) {
  const res = await stack.api("POST", `/backup/ml/${backupId}/restore`, body);
  expect(res.status).toBe(202);
  const job = await stack.waitForJob(res.body.job_id);
  expect(job.error).toBeUndefined();
  expect(job.status).toBe("succeeded");
  return job.result;
}

let fullBackup: any;

describe("MLflow backup and restore", () => {
  it("backs up everything on server A and restores it into empty server B, equal field by field", async () => {
    const job = await mlBackup({ server: "a" });
    expect(job.error).toBeUndefined();
    expect(job.result.counts).toMatchObject({ experiments: 3, runs: 5, artifacts: 6, registered_models: 2, model_versions: 4 });
    expect(job.result.counts.metric_points).toBe(2500 + 40 + 30 + 1 + 200);
    fullBackup = job;
    const list = (await stack.api("GET", "/backup/ml", undefined, stack.secrets.VIEWER_TOKEN)).body;
    expect(list.backups.map((x: any) => x.backup_id)).toEqual([job.backup_id]);
    expect(list.backups[0]).toMatchObject({ domain: "ml", source: "a", status: "completed" });
    expect((await stack.api("GET", "/backup/database")).body.backups).toEqual([]); // not mixed into database listings

    const result = await mlRestore(job.backup_id, { target: "b" });
    expect(result).toMatchObject({ runs_created: 5, runs_existing: 0, artifacts: 6, registered_models: 2, model_versions: 4 });
    const restored = await describeMlflow(new Mlflow(b.url));
    expect(restored).toEqual(original);

    // The mapping in the report is the runs' real new ids, each tagged with its original id.
    expect(Object.keys(result.run_id_map).sort()).toEqual(Object.values(seed.runs).map((r) => r.id).sort());
    const onB = new Mlflow(b.url);
    for (const [oldId, newId] of Object.entries<string>(result.run_id_map)) {
      expect(newId).not.toBe(oldId);
      const run = (await onB.get("runs/get", { run_id: newId })).run;
      expect(run.data.tags).toContainEqual({ key: "astrid.source_run_id", value: oldId });
    }
    // Artifacts byte for byte, including the 6 MB binary, checked independently of describeMlflow.
    const big = seed.runs["resnet-big"]!;
    const newBig = (await onB.get("runs/get", { run_id: result.run_id_map[big.id] })).run;
    const bytes = await onB.getArtifact(newBig.info.artifact_uri, "model/weights.bin");
    expect(bytes.length).toBe(6 * 1024 * 1024 + 123);
    expect((await import("node:crypto")).createHash("sha256").update(bytes).digest("hex")).toBe(seed.artifacts["resnet-big/model/weights.bin"]);
    // The champion alias points at version 4, whose source is the restored run.
    const model = (await onB.get("registered-models/get", { name: "galaxy-classifier" })).registered_model;
    expect(model.aliases).toContainEqual({ alias: "champion", version: "4" });
    const v4 = (await onB.get("model-versions/get", { name: "galaxy-classifier", version: "4" })).model_version;
    expect(v4.run_id).toBe(result.run_id_map[big.id]);
    expect(v4.source).toBe(`runs:/${result.run_id_map[big.id]}/model`);

    // The token never leaves the Worker's secrets and the runner's memory.
    for (const path of [`/jobs/${job.id}`, "/jobs?limit=200", "/audit?limit=500", `/backup/ml/${job.backup_id}`]) {
      expect(JSON.stringify((await stack.api("GET", path)).body)).not.toContain(TOKEN_A);
    }
  });

  it("restoring the same backup again duplicates nothing, and redoes a run a failed restore left half done", async () => {
    const onB = new Mlflow(b.url);
    const photometryOnB = (await onB.get("experiments/get-by-name", { experiment_name: "photometry" })).experiment.experiment_id;
    const zeropoint = seed.runs.zeropoint!.id;
    const half = await onB.createRun(photometryOnB, "zeropoint", 1); // as if a restore died right after runs/create
    await onB.post("runs/set-tag", { run_id: half.id, key: "astrid.source_run_id", value: zeropoint });
    const result = await mlRestore(fullBackup.backup_id, { target: "b" });
    expect(result).toMatchObject({ runs_created: 0, runs_existing: 5, model_versions: 0, artifacts: 0 });
    expect(await describeMlflow(onB)).toEqual(original);
    expect((await onB.get("runs/get", { run_id: half.id })).run.info.lifecycle_stage).toBe("deleted");
  });

  it("verifies quick and full, and a second backup stores only what changed", async () => {
    for (const depth of ["quick", "full"]) {
      const res = await stack.api("POST", `/backups/${fullBackup.backup_id}/verify`, { depth });
      const job = await stack.waitForJob(res.body.job_id);
      expect(job.kind).toBe("ml.verify");
      expect(job.result).toMatchObject({ ok: true, depth, problems: [] });
    }
    const second = await mlBackup({ server: "a" });
    expect(second.status).toBe("succeeded");
    expect(second.result.stored_bytes).toBeGreaterThan(6_000_000);
    expect(second.result.new_stored_bytes).toBeLessThan(second.result.stored_bytes * 0.05);
  });

  it("garbage collection keeps every chunk an ML manifest references", async () => {
    const gc = await stack.waitForJob((await stack.api("POST", "/repository/gc", { grace_minutes: 0 })).body.job_id);
    expect(gc.status).toBe("succeeded");
    expect(gc.result.manifests).toBeGreaterThanOrEqual(2);
    const verify = await stack.waitForJob((await stack.api("POST", `/backups/${fullBackup.backup_id}/verify`, { depth: "full" })).body.job_id);
    expect(verify.result).toMatchObject({ ok: true, problems: [] });
  });

  it("restores one experiment only (into a server given by URL)", async () => {
    const photometry = seed.experiments.photometry!;
    const result = await mlRestore(fullBackup.backup_id, { target: c.url, experiment_ids: [photometry] });
    expect(result).toMatchObject({ experiments: 1, runs_created: 2, registered_models: 0 });
    const got = await describeMlflow(new Mlflow(c.url));
    expect(Object.keys(got.experiments)).toEqual(["photometry"]);
    const want = Object.fromEntries(Object.entries(original.runs).filter(([, r]: any) => r.experiment === "photometry"));
    expect(got.runs).toEqual(want);
    expect(got.models).toEqual({});
  });

  it("restores one experiment with the registry: versions of runs not restored are skipped with a warning, never a failed job", async () => {
    const photometry = seed.experiments.photometry!;
    const result = await mlRestore(fullBackup.backup_id, { target: c.url, experiment_ids: [photometry], registry: true });
    expect(result).toMatchObject({ runs_created: 0, runs_existing: 2, registered_models: 2, model_versions: 1, model_versions_skipped: 3 });
    expect(result.warnings.filter((w: string) => /^model galaxy-classifier version \d skipped/.test(w))).toHaveLength(3);
    expect(result.warnings).toContain("model galaxy-classifier: alias champion not set, its version 4 is not restored");
    const got = await describeMlflow(new Mlflow(c.url));
    expect(got.models["zeropoint-model"]).toEqual(original.models["zeropoint-model"]);
    expect(got.models["galaxy-classifier"]).toMatchObject({ versions: [], aliases: [], description: "Morphology classifier" });
  });

  it("restores server A from its backup after A is wiped", async () => {
    await a.wipe();
    expect((await describeMlflow(new Mlflow(a.url))).runs).toEqual({});
    await mlRestore(fullBackup.backup_id, { target: "a" });
    expect(await describeMlflow(new Mlflow(a.url))).toEqual(original);
  });
});

describe("training data", () => {
  it("snapshots a dataset's table and query with a digest, linked to the runs that used it", async () => {
    const post = () => stack.api("POST", "/backup/training-data", { dataset_id: "galaxy_labels" });
    const first = await stack.waitForJob((await post()).body.job_id);
    expect(first.error).toBeUndefined();
    expect(first.result.counts).toMatchObject({ tables: 1, queries: 1, linked_runs: 2 }); // the runs whose inputs name galaxy_labels
    const listed = (await stack.api("GET", "/backup/ml?domain=training_data")).body.backups;
    expect(listed.map((x: any) => x.backup_id)).toContain(first.backup_id);
    const again = await stack.waitForJob((await post()).body.job_id);
    expect(again.result.sha256).toBe(first.result.sha256); // unchanged data, same digest
    expect(again.result.new_stored_bytes).toBe(0);
    await psql(dbUrl, "UPDATE labels SET label = 'merger' WHERE id = 7");
    const changed = await stack.waitForJob((await post()).body.job_id);
    expect(changed.result.sha256).not.toBe(first.result.sha256);
  });

  it("snapshots a dataset's R2 prefix: every object under it, with a digest that follows the bytes", async () => {
    const put = async (key: string, body: string) => {
      const res = await fetch(`${stack.workerUrl}/storage/objects/astrid-data/${key}`, {
        method: "PUT", body, headers: { authorization: `Bearer ${stack.secrets.ADMIN_TOKEN}` },
      });
      expect(res.status).toBe(201);
    };
    await put("raw/m31.fits", "SIMPLE = T / M31 frame");
    await put("raw/deep/m33.fits", "SIMPLE = T / M33 frame");
    await put("other/not-in-dataset.txt", "outside the prefix");
    const post = () => stack.api("POST", "/backup/training-data", { dataset_id: "sky_images" });
    const first = await stack.waitForJob((await post()).body.job_id);
    expect(first.error).toBeUndefined();
    expect(first.result.counts).toMatchObject({ r2_objects: 2, tables: 0, queries: 0 });
    const again = await stack.waitForJob((await post()).body.job_id);
    expect(again.result.sha256).toBe(first.result.sha256);
    expect(again.result.new_stored_bytes).toBe(0);
    await put("raw/m31.fits", "SIMPLE = T / M31 frame, recalibrated");
    const changed = await stack.waitForJob((await post()).body.job_id);
    expect(changed.result.sha256).not.toBe(first.result.sha256);
  });
});

describe("training data restore", () => {
  const sql = async (url: string, text: string) => (await psql(url, text)).trim();
  const restore = async (id: string, body: unknown) => {
    const res = await stack.api("POST", `/backup/training-data/${id}/restore`, body);
    expect(res.status).toBe(202);
    return stack.waitForJob(res.body.job_id);
  };

  it("restores a snapshot's table and query into another database with their column types; the digest reads back equal", async () => {
    const snap = await stack.waitForJob((await stack.api("POST", "/backup/training-data", { dataset_id: "galaxy_labels" })).body.job_id);
    expect(snap.error).toBeUndefined();
    const job = await restore(snap.backup_id, { target: restoreDbUrl, schema: "restored" });
    expect(job.error).toBeUndefined();
    expect(job.result).toMatchObject({
      kind: "training_data.restore", digest: snap.result.sha256,
      tables: [{ part: "table public.labels", table: "restored.labels", rows: 20000 }, { part: "query confident", table: "restored.confident", rows: expect.any(Number) }],
    });
    expect(JSON.stringify(job)).not.toContain(restoreDbUrl); // the URL was sealed, never stored
    expect(await sql(restoreDbUrl, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'restored.labels'::regclass AND attnum > 0 ORDER BY attnum"))
      .toBe("integer\ntext\nreal");
    const want = await sql(dbUrl, "SELECT md5(string_agg(format('%s|%s|%s', id, label, confidence), ',' ORDER BY id)) FROM labels");
    expect(await sql(restoreDbUrl, "SELECT md5(string_agg(format('%s|%s|%s', id, label, confidence), ',' ORDER BY id)) FROM restored.labels")).toBe(want);
    expect(await sql(restoreDbUrl, "SELECT count(*) FROM restored.confident")).toBe(await sql(dbUrl, "SELECT count(*) FROM labels WHERE confidence > 0.5"));

    // Restoring over existing tables fails and leaves what is there.
    const again = await restore(snap.backup_id, { target: restoreDbUrl, schema: "restored" });
    expect(again.error?.code).toBe("table_exists");
    expect(await sql(restoreDbUrl, "SELECT count(*) FROM restored.labels")).toBe("20000");
  });

  it("restores a snapshot's R2 objects under a target prefix, read back to the same digest", async () => {
    const snaps = (await stack.api("GET", "/backup/ml?domain=training_data&source=sky_images")).body.backups;
    const first = snaps[snaps.length - 1]; // the oldest: the M31 frame before recalibration
    const job = await restore(first.backup_id, { bucket: "astrid-data", prefix: "restored/" });
    expect(job.error).toBeUndefined();
    expect(job.result).toMatchObject({ r2_objects: 2, tables: [] });
    const get = (key: string) => fetch(`${stack.workerUrl}/storage/objects/astrid-data/${key}`, { headers: { authorization: `Bearer ${stack.secrets.ADMIN_TOKEN}` } }).then((r) => r.text());
    expect(await get("restored/raw/m31.fits")).toBe("SIMPLE = T / M31 frame");
    expect(await get("restored/raw/deep/m33.fits")).toBe("SIMPLE = T / M33 frame");
  });

  it("refuses bad requests with a clear error", async () => {
    const snaps = (await stack.api("GET", "/backup/ml?domain=training_data&source=sky_images")).body.backups;
    expect((await stack.api("POST", `/backup/training-data/${snaps[0].backup_id}/restore`, {})).status).toBe(400);
    expect((await stack.api("POST", `/backup/training-data/${snaps[0].backup_id}/restore`, { bucket: "no-such-bucket" })).status).toBe(404);
    expect((await stack.api("POST", "/backup/training-data/td-nope-20260101T000000Z-abcdef/restore", { bucket: "astrid-data" })).status).toBe(404);
    expect((await stack.api("POST", `/backup/training-data/${fullBackup.backup_id}/restore`, { bucket: "astrid-data" })).status).toBe(404);
    const missing = await restore(snaps[0].backup_id, { target: restoreDbUrl }); // R2 objects, but no bucket given
    expect(missing.error?.code).toBe("target_missing");
  });

  it("dataset SQL runs as one SQL statement: a psql meta-command or a second statement fails the job and runs nothing", async () => {
    for (const dataset_id of ["shell_escape", "two_statements"]) {
      const job = await stack.waitForJob((await stack.api("POST", "/backup/training-data", { dataset_id })).body.job_id);
      expect(job.status).toBe("failed");
      expect(job.error.code).toBe("query_invalid");
    }
    expect(existsSync(pwned)).toBe(false);
    expect(await sql(dbUrl, "SELECT count(*) FROM labels")).toBe("20000");
  });
});

describe("failures: a clear job error, nothing listed", () => {
  async function failedBackup(body: unknown, code: string) {
    const before = (await stack.api("GET", "/backup/ml?limit=100")).body.backups.length;
    const job = await mlBackup(body);
    expect(job.status).toBe("failed");
    expect(job.error.code).toBe(code);
    expect((await stack.api("GET", "/backup/ml?limit=100")).body.backups.length).toBe(before);
    return job;
  }

  it("unreachable server", async () => {
    const job = await failedBackup({ server: "down" }, "mlflow_unreachable");
    expect(job.error.message).toContain("127.0.0.1:1");
  });

  it("wrong token", async () => {
    const job = await failedBackup({ server: "badtoken" }, "mlflow_auth_failed");
    expect(JSON.stringify(job)).not.toContain("gate-token-wrong");
  });

  it("unknown experiment id", async () => {
    const job = await failedBackup({ server: "gated", experiment_ids: ["424242"] }, "experiment_not_found");
    expect(job.error.message).toContain("424242");
  });

  it("an artifact path with .. from the server: refused before it is used", async () => {
    gate.inject = { path: "../../../../etc/passwd", is_dir: false, file_size: 10 };
    const job = await failedBackup({ server: "gated" }, "artifact_path_unsafe");
    expect(gate.inject).toBeUndefined(); // the listing carried it
    expect(job.error.message).toContain("../../../../etc/passwd");
  });

  it("an artifact that disappears during the export", async () => {
    gate.vanish = "confusion.csv";
    const job = await failedBackup({ server: "gated" }, "artifact_missing");
    expect(gate.vanished).toHaveLength(1);
    expect(job.error.message).toContain("confusion.csv");
  });
});
