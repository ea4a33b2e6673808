// MLflow 3 logged models end to end (issue #11), on real parts: a real
// `mlflow server`, models logged by MLflow's own Python client the MLflow 3
// way (mlflow.sklearn.log_model(clf, name=..., registered_model_name=...)),
// the local stack (wrangler dev + runner) backing up and restoring, and
// MLflow's own loader proving the restored models load and predict exactly
// as the originals do.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureMlflow, startMlflow, type MlflowServer } from "../../runner/dev/mlflow.ts";
import { describeMlflow, Mlflow } from "../../runner/dev/mlflow-seed.ts";
import { ROOT } from "../../runner/dev/stack.ts";
import { startTestStack, type TestStack } from "../support/fixture.ts";

let stack: TestStack;
let src: MlflowServer;
let dst: MlflowServer;
let scoped: MlflowServer;
let logged: { models: Record<string, string>; runs: Record<string, string>; predictions: Record<string, unknown> };
let original: any;
let python: string;

/** The helper script under the pinned MLflow's python; its last stdout line is its JSON answer. */
async function helper(...args: string[]): Promise<any> {
  const child = spawn(python, [join(ROOT, "test/support/mlflow3_models.py"), ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (err = (err + d).slice(-4000)));
  const code = await new Promise((r) => child.on("close", r));
  if (code !== 0) throw new Error(`mlflow3_models.py ${args[0]} exited ${code}: ${err}`);
  return JSON.parse(out.trim().split("\n").pop()!);
}

beforeAll(async () => {
  python = join(await ensureMlflow(), "python");
  [src, dst, scoped] = await Promise.all([startMlflow(), startMlflow(), startMlflow()]);
  logged = await helper("log", src.url);
  original = await describeMlflow(new Mlflow(src.url));
  stack = await startTestStack({
    vars: { ML_SERVERS: "src,dst,scoped", MLFLOW_TRACKING_URI_SRC: src.url, MLFLOW_TRACKING_URI_DST: dst.url, MLFLOW_TRACKING_URI_SCOPED: scoped.url },
  });
});

afterAll(async () => {
  await stack?.dispose();
  await Promise.all([src?.stop(), dst?.stop(), scoped?.stop()]);
});

async function job(method: string, path: string, body: unknown) {
  const res = await stack.api(method, path, body);
  expect(res.status).toBe(202);
  const done = await stack.waitForJob(res.body.job_id);
  expect(done.error).toBeUndefined();
  expect(done.status).toBe("succeeded");
  return done;
}

let backup: any;

describe("MLflow 3 logged models", () => {
  it("the source has what MLflow 3 logs: three logged models, two registered versions with an alias, run outputs", () => {
    expect(Object.keys(original.logged_models).sort()).toEqual(Object.values(logged.models).sort());
    const v = original.models["star-galaxy-separator"].versions;
    expect(v.map((x: any) => x.source)).toEqual([`models:/${logged.models["logreg-1"]}`, `models:/${logged.models["logreg-2"]}`]);
    expect(original.logged_models[logged.models["logreg-2"]!]).toMatchObject({ source_run: logged.runs["logreg-2"], params: [{ key: "C", value: "1.0" }, { key: "solver", value: "lbfgs" }] });
    expect(original.logged_models[logged.models["logreg-2"]!].metrics).toContainEqual(expect.objectContaining({ key: "accuracy", step: 1, dataset: expect.stringMatching(/^sdss_sample@/) }));
    expect(original.runs[logged.runs.tree!].model_outputs).toEqual([{ model_id: logged.models.tree, step: 0 }]);
    expect(Object.keys(original.logged_models[logged.models.tree!].artifacts)).toEqual(expect.arrayContaining(["MLmodel", "requirements.txt", "conda.yaml", "python_env.yaml"]));
  });

  it("backs up the logged models with their artifacts", async () => {
    backup = await job("POST", "/backup/ml", { server: "src" });
    expect(backup.result.counts).toMatchObject({ experiments: 2, runs: 3, logged_models: 3, registered_models: 1, model_versions: 2 });
    const files = Object.values<any>(original.logged_models).reduce((n, m) => n + Object.keys(m.artifacts).length, 0);
    expect(backup.result.counts.model_artifacts).toBe(files);
  });

  it("restores into an empty server: logged models, lineage and registry equal; models load by URI and predict identically", async () => {
    const done = await job("POST", `/backup/ml/${backup.backup_id}/restore`, { target: "dst" });
    const r = done.result;
    expect(r).toMatchObject({ runs_created: 3, logged_models: 3, logged_models_existing: 0, registered_models: 1, model_versions: 2, model_versions_skipped: 0, warnings: [] });
    expect(Object.keys(r.logged_model_id_map).sort()).toEqual(Object.values(logged.models).sort());
    for (const [oldId, newId] of Object.entries<string>(r.logged_model_id_map)) expect(newId).not.toBe(oldId);

    const restored = await describeMlflow(new Mlflow(dst.url));
    expect(restored.logged_models).toEqual(original.logged_models);
    expect(restored.runs).toEqual(original.runs);
    expect(restored.models).toEqual(original.models);

    // The registered versions point at the restored logged models, linked to the restored runs.
    const onDst = new Mlflow(dst.url);
    const v2 = (await onDst.get("model-versions/get", { name: "star-galaxy-separator", version: "2" })).model_version;
    expect(v2.source).toBe(`models:/${r.logged_model_id_map[logged.models["logreg-2"]!]}`);
    expect(v2.run_id).toBe(r.run_id_map[logged.runs["logreg-2"]!]);
    expect(v2.aliases).toEqual(["champion"]);
    // The source's registry times, which MLflow cannot take on create, are kept in tags and the result.
    const srcV2 = (await new Mlflow(src.url).get("model-versions/get", { name: "star-galaxy-separator", version: "2" })).model_version;
    expect(v2.tags).toContainEqual({ key: "astrid.source_creation_time", value: new Date(Number(srcV2.creation_timestamp)).toISOString() });
    expect(r.registry_times["star-galaxy-separator"].versions["2"].creation_timestamp).toBe(Number(srcV2.creation_timestamp));

    const tree = r.logged_model_id_map[logged.models.tree!];
    const uris = {
      "models:/star-galaxy-separator@champion": "models:/star-galaxy-separator@champion",
      "models:/star-galaxy-separator/1": "models:/star-galaxy-separator/1",
      [`models:/${logged.models.tree}`]: `models:/${tree}`,
      [`runs:/${logged.runs.tree}/outlier-nb`]: `runs:/${r.run_id_map[logged.runs.tree!]}/outlier-nb`,
    };
    const predicted = await helper("predict", dst.url, ...Object.values(uris));
    for (const [before, after] of Object.entries(uris)) expect(predicted[after]).toEqual(logged.predictions[before]);
  });

  it("restoring again adds nothing", async () => {
    const before = await describeMlflow(new Mlflow(dst.url), { artifacts: false });
    const done = await job("POST", `/backup/ml/${backup.backup_id}/restore`, { target: "dst" });
    expect(done.result).toMatchObject({ runs_created: 0, runs_existing: 3, logged_models: 0, logged_models_existing: 3, model_versions: 0, artifacts: 0 });
    expect(await describeMlflow(new Mlflow(dst.url), { artifacts: false })).toEqual(before);
  });
});

describe("deleted experiments and runs", () => {
  it("include_deleted backs them up and a restore recreates them deleted, once", async () => {
    const m = new Mlflow(src.url);
    const retired = (await m.post("experiments/create", { name: "retired" })).experiment_id;
    const old = await m.createRun(retired, "old-run", Date.UTC(2024, 0, 1));
    await m.post("runs/log-batch", { run_id: old.id, metrics: [{ key: "loss", value: 0.3, timestamp: Date.UTC(2024, 0, 1), step: 4 }] });
    await m.post("experiments/delete", { experiment_id: retired });
    const starGalaxy = (await m.get("experiments/get-by-name", { experiment_name: "star-galaxy" })).experiment.experiment_id;
    const discarded = await m.createRun(starGalaxy, "discarded", Date.UTC(2024, 0, 2));
    await m.post("runs/delete", { run_id: discarded.id });

    const plain = await job("POST", "/backup/ml", { server: "src" });
    expect(plain.result.counts).toMatchObject({ experiments: 2, runs: 3 }); // deleted ones only when asked
    const withDeleted = await job("POST", "/backup/ml", { server: "src", include_deleted: true });
    expect(withDeleted.result.counts).toMatchObject({ experiments: 3, runs: 5, logged_models: 3 });

    for (const round of [1, 2]) {
      const r = (await job("POST", `/backup/ml/${withDeleted.backup_id}/restore`, { target: "scoped" })).result;
      expect(r).toMatchObject(round === 1 ? { runs_created: 5, runs_existing: 0 } : { runs_created: 0, runs_existing: 5, logged_models: 0 });
      const onScoped = new Mlflow(scoped.url);
      const exp = (await onScoped.get("experiments/get-by-name", { experiment_name: "retired" })).experiment;
      expect(exp.lifecycle_stage).toBe("deleted");
      const oldRun = (await onScoped.get("runs/get", { run_id: r.run_id_map[old.id] })).run;
      expect(oldRun.info.lifecycle_stage).toBe("deleted");
      expect(oldRun.data.metrics).toEqual([{ key: "loss", value: 0.3, timestamp: Date.UTC(2024, 0, 1), step: 4 }]);
      expect((await onScoped.get("runs/get", { run_id: r.run_id_map[discarded.id] })).run.info.lifecycle_stage).toBe("deleted");
      const all = await onScoped.post("runs/search", { experiment_ids: [r.experiment_id_map[starGalaxy]], run_view_type: "ALL", max_results: 100 });
      expect(all.runs).toHaveLength(4); // three active, one deleted: nothing doubled by the second round
    }
  });
});
