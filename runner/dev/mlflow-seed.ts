// Dev/test data for MLflow, over its REST API: seeding a server with
// experiments, runs, metric histories, artifacts and a model registry, and
// describing a server's whole content in a comparable form (run ids replaced
// by the original ids a restore tags runs with), so that a backup restored
// into another server can be compared field by field with the source.
import { createHash, randomBytes } from "node:crypto";

export class Mlflow {
  readonly url: string;
  private readonly token: string | undefined;
  constructor(url: string, token?: string) {
    this.url = url.replace(/\/+$/, "");
    this.token = token;
  }

  async call(method: string, endpoint: string, body?: unknown): Promise<any> {
    const res = await fetch(`${this.url}/api/2.0/mlflow/${endpoint}`, {
      method, headers: { "content-type": "application/json", ...(this.token ? { authorization: `Bearer ${this.token}` } : {}) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${endpoint}: HTTP ${res.status} ${text.slice(0, 300)}`);
    return text ? JSON.parse(text) : {};
  }

  get(endpoint: string, query: Record<string, string>): Promise<any> {
    return this.call("GET", `${endpoint}?${new URLSearchParams(query)}`);
  }

  post(endpoint: string, body: unknown): Promise<any> {
    return this.call("POST", endpoint, body);
  }

  artifactUrl(uri: string): string {
    return `${this.url}/api/2.0/mlflow-artifacts/artifacts/${uri.replace(/^mlflow-artifacts:\//, "")}`;
  }

  async putArtifact(runUri: string, path: string, data: Uint8Array): Promise<void> {
    const res = await fetch(this.artifactUrl(`${runUri}/${path}`), { method: "PUT", body: data });
    if (!res.ok) throw new Error(`PUT artifact ${path}: HTTP ${res.status}`);
  }

  async getArtifact(runUri: string, path: string): Promise<Buffer> {
    const res = await fetch(this.artifactUrl(`${runUri}/${path}`));
    if (!res.ok) throw new Error(`GET artifact ${path}: HTTP ${res.status}`);
    return Buffer.from(await res.arrayBuffer());
  }

  async deleteArtifact(runUri: string, path: string): Promise<void> {
    const res = await fetch(this.artifactUrl(`${runUri}/${path}`), { method: "DELETE" });
    if (!res.ok) throw new Error(`DELETE artifact ${path}: HTTP ${res.status}`);
  }

  async createRun(experimentId: string, name: string, startTime: number): Promise<{ id: string; uri: string }> {
    const run = (await this.post("runs/create", { experiment_id: experimentId, run_name: name, start_time: startTime })).run;
    return { id: run.info.run_id, uri: run.info.artifact_uri };
  }

  /** Logs metric points (step i, timestamp start + i s) in log-batch-sized calls. */
  async logHistory(runId: string, key: string, points: number, start: number, value = (i: number) => Math.sin(i / 50) + i / points): Promise<void> {
    for (let i = 0; i < points; i += 1000) {
      const metrics = [];
      for (let j = i; j < Math.min(points, i + 1000); j++) metrics.push({ key, value: value(j), timestamp: start + j * 1000, step: j });
      await this.post("runs/log-batch", { run_id: runId, metrics });
    }
  }
}

export interface SeedSummary {
  experiments: Record<string, string>;
  runs: Record<string, { id: string; uri: string; experiment: string }>;
  /** sha256 of every artifact, by "<run label>/<path>". */
  artifacts: Record<string, string>;
}

const T0 = Date.UTC(2025, 0, 15, 8, 0, 0);

/**
 * A small but complete server: two experiments with tags, five runs (one a
 * child run, one with 150 params and a 2,500-point history, one still
 * RUNNING), dataset inputs, artifacts including a 6 MB binary and a nested
 * directory, and a registered model with four versions (one deleted), stages,
 * tags, descriptions and two aliases.
 */
export async function seedMlflow(m: Mlflow): Promise<SeedSummary> {
  const s: SeedSummary = { experiments: {}, runs: {}, artifacts: {} };
  for (const [name, tags] of [["galaxy-classifier", { team: "vision", survey: "ztf" }], ["photometry", { team: "photometry" }]] as const) {
    s.experiments[name] = (await m.post("experiments/create", { name, tags: Object.entries(tags).map(([key, value]) => ({ key, value })) })).experiment_id;
  }
  const run = async (label: string, experiment: string, offsetMin: number) => {
    const r = await m.createRun(s.experiments[experiment]!, label, T0 + offsetMin * 60_000);
    s.runs[label] = { ...r, experiment };
    return r;
  };
  const artifact = async (label: string, path: string, data: Uint8Array) => {
    await m.putArtifact(s.runs[label]!.uri, path, data);
    s.artifacts[`${label}/${path}`] = createHash("sha256").update(data).digest("hex");
  };

  const big = await run("resnet-big", "galaxy-classifier", 0);
  await m.post("runs/log-batch", {
    run_id: big.id,
    params: Array.from({ length: 150 }, (_, i) => ({ key: `hp_${String(i).padStart(3, "0")}`, value: `v${i}` })).slice(0, 100),
    tags: [{ key: "mlflow.user", value: "astro" }, { key: "mlflow.source.name", value: "train.py" }, { key: "stage", value: "final" }],
  });
  await m.post("runs/log-batch", { run_id: big.id, params: Array.from({ length: 50 }, (_, i) => ({ key: `hp_${String(i + 100).padStart(3, "0")}`, value: `v${i + 100}` })) });
  await m.logHistory(big.id, "loss", 2500, T0 + 1000);
  await m.logHistory(big.id, "val_accuracy", 40, T0 + 5000, (i) => 0.5 + i / 100);
  await m.post("runs/log-inputs", {
    run_id: big.id,
    datasets: [{ tags: [{ key: "mlflow.data.context", value: "training" }], dataset: { name: "galaxy_labels", digest: "d1g35t", source_type: "code", source: "{\"table\":\"labels\"}", schema: "{\"mlflow_colspec\":[]}", profile: "{\"num_rows\":1000}" } }],
  });
  await artifact("resnet-big", "model/weights.bin", randomBytes(6 * 1024 * 1024 + 123));
  await artifact("resnet-big", "model/MLmodel", Buffer.from("artifact_path: model\nflavors:\n  python_function: {}\n"));
  await artifact("resnet-big", "plots/nested/deep/confusion.csv", Buffer.from("a,b\n1,2\n3,4\n"));
  await artifact("resnet-big", "notes with space.txt", Buffer.from("spaces in names\n"));
  await m.post("runs/update", { run_id: big.id, status: "FINISHED", end_time: T0 + 3_600_000 });

  const child = await run("resnet-big-fold-1", "galaxy-classifier", 5);
  await m.post("runs/set-tag", { run_id: child.id, key: "mlflow.parentRunId", value: big.id });
  await m.logHistory(child.id, "loss", 30, T0 + 300_000);
  await m.post("runs/update", { run_id: child.id, status: "FINISHED", end_time: T0 + 900_000 });

  const small = await run("baseline", "galaxy-classifier", 60);
  await m.post("runs/log-batch", { run_id: small.id, params: [{ key: "model", value: "logreg" }], metrics: [{ key: "accuracy", value: 0.71, timestamp: T0 + 3_700_000, step: 0 }] });
  await m.post("runs/log-inputs", { run_id: small.id, datasets: [{ tags: [], dataset: { name: "galaxy_labels", digest: "d1g35t", source_type: "code", source: "{}" } }] });
  await artifact("baseline", "model/model.pkl", randomBytes(4096));
  await m.post("runs/update", { run_id: small.id, status: "FAILED", end_time: T0 + 3_800_000 });

  const phot = await run("zeropoint", "photometry", 120);
  await m.logHistory(phot.id, "residual", 200, T0 + 7_200_000);
  await artifact("zeropoint", "fit/coefficients.json", Buffer.from(JSON.stringify({ a: 1.5, b: -0.25 })));
  await m.post("runs/update", { run_id: phot.id, status: "FINISHED", end_time: T0 + 7_300_000 });
  await run("zeropoint-live", "photometry", 180); // still RUNNING, no end time

  await m.post("registered-models/create", { name: "galaxy-classifier", description: "Morphology classifier", tags: [{ key: "owner", value: "vision" }] });
  const version = (source: string, runId: string, description: string, tags: Record<string, string> = {}) =>
    m.post("model-versions/create", { name: "galaxy-classifier", source, run_id: runId, description, tags: Object.entries(tags).map(([key, value]) => ({ key, value })) });
  await version(`${big.uri}/model`, big.id, "first", { validated: "yes" });
  await version(`runs:/${small.id}/model`, small.id, "baseline");
  await version(`${big.uri}/model`, big.id, "to be deleted");
  await version(`runs:/${big.id}/model`, big.id, "retrained", { validated: "no" });
  await m.call("DELETE", "model-versions/delete", { name: "galaxy-classifier", version: "3" });
  await m.post("model-versions/transition-stage", { name: "galaxy-classifier", version: "1", stage: "Production", archive_existing_versions: false });
  await m.post("model-versions/transition-stage", { name: "galaxy-classifier", version: "2", stage: "Archived", archive_existing_versions: false });
  await m.post("registered-models/alias", { name: "galaxy-classifier", alias: "champion", version: "4" });
  await m.post("registered-models/alias", { name: "galaxy-classifier", alias: "baseline", version: "2" });
  await m.post("registered-models/create", { name: "zeropoint-model", tags: [] });
  await m.post("model-versions/create", { name: "zeropoint-model", source: `${phot.uri}/fit`, run_id: phot.id, description: "" });
  return s;
}

/**
 * Everything a server holds, keyed by the original run id (a restored run's
 * astrid.source_run_id tag, a source run's own id), without what a restore
 * necessarily changes (ids, artifact locations, creation timestamps).
 */
export async function describeMlflow(m: Mlflow, opts: { artifacts?: boolean } = {}): Promise<any> {
  const experiments: any = {};
  const runs: any = {};
  const idOf = (run: any) => run.data?.tags?.find((t: any) => t.key === "astrid.source_run_id")?.value ?? run.info.run_id;
  const newToOld = new Map<string, string>();
  const found: any[] = [];
  // MLflow 3 logged models, keyed by original id (a restored one's astrid.source_model_id tag).
  const loggedModels: any = {};
  const modelNewToOld = new Map<string, string>();
  const experimentList = (await m.post("experiments/search", { max_results: 1000 })).experiments ?? [];
  const listed: { model: any; experiment: string }[] = [];
  for (const e of experimentList) {
    for (const model of (await m.post("logged-models/search", { experiment_ids: [e.experiment_id], max_results: 100 })).models ?? []) {
      modelNewToOld.set(model.info.model_id, model.info.tags?.find((t: any) => t.key === "astrid.source_model_id")?.value ?? model.info.model_id);
      listed.push({ model, experiment: e.name });
    }
  }
  const oldModel = (id: string) => modelNewToOld.get(id) ?? id;
  for (const e of experimentList) {
    const rs: any[] = [];
    let token: string | undefined;
    do {
      const page = await m.post("runs/search", { experiment_ids: [e.experiment_id], max_results: 1000, ...(token ? { page_token: token } : {}) });
      rs.push(...(page.runs ?? []));
      token = page.next_page_token;
    } while (token);
    if (e.name === "Default" && rs.length === 0) continue;
    experiments[e.name] = { tags: sortKV(e.tags), runs: rs.length };
    for (const r of rs) {
      newToOld.set(r.info.run_id, idOf(r));
      found.push({ r, experiment: e.name });
    }
  }
  for (const { r, experiment } of found) {
    const id = idOf(r);
    const metrics: any = {};
    for (const key of [...new Set<string>((r.data.metrics ?? []).map((x: any) => x.key))].sort()) {
      const points: any[] = [];
      let token: string | undefined;
      do {
        const page = await m.get("metrics/get-history", { run_id: r.info.run_id, metric_key: key, max_results: "25000", ...(token ? { page_token: token } : {}) });
        points.push(...(page.metrics ?? []).map((p: any) => [p.step, p.timestamp, p.value]));
        token = page.next_page_token;
      } while (token);
      metrics[key] = points.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    }
    const artifacts: any = {};
    if (opts.artifacts !== false) {
      const walk = async (path: string) => {
        const listing = await m.get("artifacts/list", { run_id: r.info.run_id, ...(path ? { path } : {}) });
        for (const f of listing.files ?? []) {
          if (f.is_dir) await walk(f.path);
          else artifacts[f.path] = { size: Number(f.file_size), sha256: createHash("sha256").update(await m.getArtifact(r.info.artifact_uri, f.path)).digest("hex") };
        }
      };
      await walk("");
    }
    runs[id] = {
      experiment, name: r.info.run_name, status: r.info.status, start_time: r.info.start_time, end_time: r.info.end_time ?? null,
      params: sortKV(r.data.params),
      tags: sortKV((r.data.tags ?? []).filter((t: any) => !t.key.startsWith("astrid.")).map((t: any) => (t.key === "mlflow.parentRunId" ? { ...t, value: newToOld.get(t.value) ?? t.value } : t))),
      inputs: r.inputs?.dataset_inputs ?? [],
      model_inputs: (r.inputs?.model_inputs ?? []).map((x: any) => oldModel(x.model_id)).sort(),
      model_outputs: (r.outputs?.model_outputs ?? []).map((x: any) => ({ model_id: oldModel(x.model_id), step: Number(x.step ?? 0) })).sort((a: any, b: any) => a.model_id.localeCompare(b.model_id)),
      metrics, artifacts,
    };
  }
  const models: any = {};
  for (const rm of (await m.get("registered-models/search", { max_results: "1000" })).registered_models ?? []) {
    const full = (await m.get("registered-models/get", { name: rm.name })).registered_model;
    const versions = ((await m.get("model-versions/search", { filter: `name='${rm.name}'`, max_results: "1000" })).model_versions ?? [])
      .map((v: any) => {
        const run = v.run_id ? newToOld.get(v.run_id) ?? v.run_id : null;
        let source: string = v.source;
        if (v.run_id) source = source.split(v.run_id).join(run).replace(/^mlflow-artifacts:\/[^/]+\//, "mlflow-artifacts:/<exp>/");
        source = source.replace(/^models:\/(m-[0-9a-f]+)/, (_, id) => `models:/${oldModel(id)}`);
        return { version: Number(v.version), source, run_id: run, description: v.description ?? "", stage: v.current_stage, status: v.status, tags: sortKV(withoutAstrid(v.tags)) };
      })
      .sort((a: any, b: any) => a.version - b.version);
    models[rm.name] = {
      description: full.description ?? "", tags: sortKV(withoutAstrid(full.tags)),
      aliases: [...(full.aliases ?? [])].sort((a: any, b: any) => a.alias.localeCompare(b.alias)), versions,
    };
  }
  for (const { model, experiment } of listed) {
    const info = model.info;
    const artifacts: any = {};
    if (opts.artifacts !== false) {
      const walk = async (path: string) => {
        const listing = await m.get(`logged-models/${info.model_id}/artifacts/directories`, path ? { artifact_directory_path: path } : {});
        for (const f of listing.files ?? []) {
          if (f.is_dir) await walk(f.path);
          else artifacts[f.path] = { size: Number(f.file_size), sha256: createHash("sha256").update(await m.getArtifact(info.artifact_uri, f.path)).digest("hex") };
        }
      };
      await walk("");
    }
    loggedModels[oldModel(info.model_id)] = {
      experiment, name: info.name, status: info.status, model_type: info.model_type ?? "",
      source_run: info.source_run_id ? newToOld.get(info.source_run_id) ?? info.source_run_id : null,
      tags: sortKV(withoutAstrid(info.tags).map(versionsTag)), params: sortKV(model.data?.params),
      metrics: (model.data?.metrics ?? []).map((x: any) => ({
        key: x.key, value: x.value, step: x.step ?? 0, timestamp: x.timestamp, run: newToOld.get(x.run_id) ?? x.run_id,
        dataset: x.dataset_name ? `${x.dataset_name}@${x.dataset_digest}` : null,
      })).sort((a: any, b: any) => a.key.localeCompare(b.key) || a.step - b.step || a.timestamp - b.timestamp),
      artifacts,
    };
  }
  return { experiments, runs, models, logged_models: loggedModels };
}

/**
 * mlflow.modelVersions is the server's own list of the versions made from a
 * logged model; MLflow's client and server both append to it on a source
 * server (so a version can appear twice), a restore's version creation
 * writes it once. Compared as the set of versions it names.
 */
function versionsTag(t: { key: string; value: string }) {
  if (t.key !== "mlflow.modelVersions") return t;
  const names = new Set((JSON.parse(t.value) as { name: string; version: unknown }[]).map((v) => `${v.name}/${v.version}`));
  return { key: t.key, value: [...names].sort().join(",") };
}

function withoutAstrid(list: { key: string; value: string }[] | undefined) {
  return (list ?? []).filter((t) => !t.key.startsWith("astrid."));
}

function sortKV(list: { key: string; value: string }[] | undefined) {
  return [...(list ?? [])].map(({ key, value }) => ({ key, value })).sort((a, b) => a.key.localeCompare(b.key));
}
