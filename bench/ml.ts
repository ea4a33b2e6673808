// MLflow backup/restore benchmark: our export (ml.backup through the real
// local stack: REST export -> chunking -> zstd -> age -> repository) and our
// restore into an empty server, against the peer on the same server and the
// same runs: mlflow-export-import's export-experiment (pip, pinned next to
// MLflow), or, if it cannot run, the MLflow Python client downloading the
// same runs, histories and artifacts.
//
//   npm run bench:ml [-- --runs 200 --points 1000 --artifact-mb 100 --logged-models 20 --model-mb 20 --server-workers 4 --run-concurrency 6]
//
// --logged-models: that many of the runs also log an MLflow 3 logged model
// (MLmodel, model.pkl, requirements.txt; --model-mb of weights in all, on top
// of --artifact-mb), with params and a metric, each registered as a version
// of one model (source models:/m-…). 0 gives the earlier, runs-only figures.
//
// Prints a table and, as the last line, the whole result as one JSON object.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { randomBytes } from "node:crypto";
import { ensureMlflow, MLFLOW_VERSION, startMlflow, type MlflowServer } from "../runner/dev/mlflow.ts";
import { Mlflow } from "../runner/dev/mlflow-seed.ts";
import { generateLocalSecrets } from "../runner/dev/secrets.ts";
import { freePort, startStack, type Stack } from "../runner/dev/stack.ts";
import { cpuDelta, cpuSnapshot, sampleRss, type CpuByRole } from "./support/proc.ts";

const { values: args } = parseArgs({
  options: {
    runs: { type: "string", default: "200" },
    points: { type: "string", default: "1000" },
    "artifact-mb": { type: "string", default: "100" },
    "logged-models": { type: "string", default: "20" },
    "model-mb": { type: "string", default: "20" },
    /** mlflow server --workers: 4 is MLflow's own default; the tests use 1. */
    "server-workers": { type: "string", default: "4" },
    /** The runner's ML_RUN_CONCURRENCY (runs exported or restored at once; default 6). */
    "run-concurrency": { type: "string" },
  },
});
const RUNS = Number(args.runs);
const POINTS = Number(args.points);
const ARTIFACT_BYTES = Number(args["artifact-mb"]) * 1024 * 1024;
const SERVER_WORKERS = Number(args["server-workers"]);
const LOGGED_MODELS = Math.min(Number(args["logged-models"]), Number(args.runs));
const MODEL_BYTES = Number(args["model-mb"]) * 1024 * 1024;
// tabulate: export-import imports it but does not declare it.
const PEER_PACKAGES = ["mlflow-export-import==1.2.0", "tabulate"];
const MiB = 1024 * 1024;

const cleanups: (() => Promise<void> | void)[] = [];
async function cleanup() {
  for (const fn of cleanups.reverse()) await Promise.resolve(fn()).catch(() => {});
  cleanups.length = 0;
}
process.once("SIGINT", () => void cleanup().then(() => process.exit(130)));

async function seed(m: Mlflow): Promise<string> {
  const experiment = (await m.post("experiments/create", { name: "bench" })).experiment_id as string;
  const perRun = Math.floor(ARTIFACT_BYTES / RUNS);
  const t0 = Date.UTC(2025, 5, 1);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < RUNS; i = next++) {
      const run = await m.createRun(experiment, `run-${i}`, t0 + i * 60_000);
      await m.post("runs/log-batch", { run_id: run.id, params: [{ key: "lr", value: String(0.001 * (i + 1)) }, { key: "seed", value: String(i) }] });
      await m.logHistory(run.id, "loss", POINTS, t0 + i * 60_000);
      await m.putArtifact(run.uri, "model/weights.bin", randomBytes(perRun));
      await m.putArtifact(run.uri, "config.json", Buffer.from(JSON.stringify({ run: i })));
      if (i < LOGGED_MODELS) await loggedModel(m, experiment, run.id, i);
      await m.post("runs/update", { run_id: run.id, status: "FINISHED", end_time: t0 + i * 60_000 + 30_000 });
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  // Registered in order, so version n is the model of run n-1.
  if (LOGGED_MODELS > 0) await m.post("registered-models/create", { name: "bench-model" });
  for (const [i, id] of [...loggedModels.entries()].sort(([a], [b]) => a - b)) {
    await m.post("model-versions/create", { name: "bench-model", source: `models:/${id}`, model_id: id, run_id: loggedModelRuns.get(i) });
  }
  return experiment;
}

const loggedModels = new Map<number, string>();
const loggedModelRuns = new Map<number, string>();

/** What mlflow.<flavor>.log_model does in MLflow 3, over REST: a logged model with params, artifacts and a metric, finalized and linked to its run. */
async function loggedModel(m: Mlflow, experiment: string, runId: string, i: number): Promise<void> {
  const model = (await m.post("logged-models", {
    experiment_id: experiment, name: "model", source_run_id: runId, params: [{ key: "alpha", value: String(i) }], tags: [{ key: "flavor", value: "bench" }],
  })).model;
  const id = model.info.model_id as string;
  await m.putArtifact(model.info.artifact_uri, "MLmodel", Buffer.from(`artifact_path: model\nmodel_id: ${id}\nflavors:\n  python_function: {}\n`));
  await m.putArtifact(model.info.artifact_uri, "model.pkl", randomBytes(Math.floor(MODEL_BYTES / LOGGED_MODELS)));
  await m.putArtifact(model.info.artifact_uri, "requirements.txt", Buffer.from("mlflow\nscikit-learn\n"));
  await m.post("runs/log-batch", { run_id: runId, metrics: [{ key: "accuracy", value: 0.9, timestamp: Date.now(), step: 0, model_id: id }] });
  await m.post("runs/outputs", { run_id: runId, models: [{ model_id: id, step: 0 }] });
  await m.call("PATCH", `logged-models/${id}`, { model_id: id, status: "LOGGED_MODEL_READY" });
  loggedModels.set(i, id);
  loggedModelRuns.set(i, runId);
}

async function api(stack: Stack, token: string, method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(stack.workerUrl + path, {
    method, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return res.json();
}

async function waitJob(stack: Stack, token: string, id: string): Promise<any> {
  for (;;) {
    const job = await api(stack, token, "GET", `/jobs/${id}`);
    if (job.status === "succeeded") return job;
    if (job.status === "failed") throw new Error(`job ${id} failed: ${JSON.stringify(job.error)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

let runnerPid = 0;
const roleOf = (p: { pid: number; comm: string }) =>
  p.pid === runnerPid ? "runner" : /workerd/.test(p.comm) ? "workerd" : /python|mlflow|uvicorn|gunicorn|export-exp/.test(p.comm) ? "mlflow+python" : "other";
const cpu = () => cpuSnapshot(roleOf, new Set(["mlflow+python", "workerd"]));

/** Times our job from submission to completion, sampling the runner's RSS and CPU by process role. */
async function timed(stack: Stack, token: string, method: string, path: string, body: unknown) {
  runnerPid = stack.runnerPid()!;
  const rss = sampleRss(runnerPid, 25);
  const before = cpu();
  const start = performance.now();
  const { job_id } = await api(stack, token, method, path, body);
  const job = await waitJob(stack, token, job_id);
  const seconds = (performance.now() - start) / 1000;
  return { job, seconds, rss: rss.stop(), cpu: cpuDelta(before, cpu()) };
}

const PYTHON_CLIENT_PEER = `
import os, sys, json, mlflow
from mlflow.tracking import MlflowClient
c = MlflowClient()
out = sys.argv[2]
runs = c.search_runs([sys.argv[1]], max_results=50000)
for r in runs:
    d = os.path.join(out, r.info.run_id)
    os.makedirs(d, exist_ok=True)
    hist = {k: [(m.step, m.timestamp, m.value) for m in c.get_metric_history(r.info.run_id, k)] for k in r.data.metrics}
    json.dump({"params": r.data.params, "tags": r.data.tags, "metrics": hist}, open(os.path.join(d, "run.json"), "w"))
    mlflow.artifacts.download_artifacts(run_id=r.info.run_id, dst_path=os.path.join(d, "artifacts"))
print(len(runs))
`;

interface PeerResult {
  tool: string;
  seconds?: number;
  cpu?: CpuByRole;
  error?: string;
}

/** The peers, on the same server and experiment: export-experiment, and the plain MLflow Python client. */
async function peers(bin: string, server: MlflowServer, experiment: string): Promise<PeerResult[]> {
  const out = mkdtempSync(join(tmpdir(), "astrid-bench-peer-"));
  cleanups.push(() => rmSync(out, { recursive: true, force: true }));
  const env = { ...process.env, MLFLOW_TRACKING_URI: server.url };
  const run = (tool: string, cmd: string, argv: string[]): PeerResult => {
    const before = cpu();
    const start = performance.now();
    const r = spawnSync(cmd, argv, { env, encoding: "utf8", maxBuffer: 64 * MiB });
    const seconds = (performance.now() - start) / 1000;
    if (r.status === 0) return { tool, seconds, cpu: cpuDelta(before, cpu()) };
    return { tool, error: `${(r.stderr || r.stdout || "").trim().split("\n").slice(-1)[0] ?? ""}`.slice(0, 300) };
  };
  const script = join(out, "peer.py");
  writeFileSync(script, PYTHON_CLIENT_PEER);
  return [
    run(`mlflow-export-import export-experiment (${PEER_PACKAGES[0]})`, join(bin, "export-experiment"), ["--experiment", experiment, "--output-dir", join(out, "eei")]),
    run(`MLflow ${MLFLOW_VERSION} Python client (search_runs, get_metric_history, download_artifacts), one run at a time`, join(bin, "python"), [script, experiment, join(out, "client")]),
  ];
}

async function main() {
  const bin = await ensureMlflow(PEER_PACKAGES);
  const [a, b] = await Promise.all([startMlflow({ workers: SERVER_WORKERS }), startMlflow({ workers: SERVER_WORKERS })]);
  cleanups.push(() => a.stop(), () => b.stop());
  const m = new Mlflow(a.url);
  let t = performance.now();
  const experiment = await seed(m);
  console.error(`seeded ${RUNS} runs x ${POINTS} points, ${ARTIFACT_BYTES / MiB} MiB artifacts in ${((performance.now() - t) / 1000).toFixed(1)} s`);

  const secrets = await generateLocalSecrets();
  const dir = mkdtempSync(join(tmpdir(), "astrid-bench-ml-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const stack = await startStack({
    dir, workerPort: await freePort(), runnerPort: await freePort(),
    vars: { ...secrets, ML_SERVERS: "a,b", MLFLOW_TRACKING_URI_A: a.url, MLFLOW_TRACKING_URI_B: b.url, DATABASE_VERIFY_AFTER_BACKUP: "off" },
    ...(args["run-concurrency"] ? { runnerEnv: { ML_RUN_CONCURRENCY: args["run-concurrency"] } } : {}),
  });
  cleanups.push(() => stack.stop());
  const token = secrets.ADMIN_TOKEN;

  const exp = await timed(stack, token, "POST", "/backup/ml", { server: "a", experiment_ids: [experiment], registry: LOGGED_MODELS > 0 });
  const res = await timed(stack, token, "POST", `/backup/ml/${exp.job.backup_id}/restore`, { target: "b" });
  const restoredRuns = Object.keys(res.job.result.run_id_map).length;
  if (restoredRuns !== RUNS) throw new Error(`restored ${restoredRuns} runs, expected ${RUNS}`);
  const restoredModels = Object.keys(res.job.result.logged_model_id_map ?? {}).length;
  if (restoredModels !== LOGGED_MODELS || res.job.result.model_versions !== LOGGED_MODELS) {
    throw new Error(`restored ${restoredModels} logged models and ${res.job.result.model_versions} versions, expected ${LOGGED_MODELS}`);
  }
  const others = await peers(bin, a, experiment);

  const artifactMiB = exp.job.result.counts.artifact_bytes / MiB;
  const result = {
    mlflow: MLFLOW_VERSION, server_workers: SERVER_WORKERS, runs: RUNS, metric_points_per_run: POINTS, artifact_mib: Math.round(artifactMiB * 10) / 10,
    logged_models: LOGGED_MODELS, model_artifacts: exp.job.result.counts.model_artifacts ?? 0,
    export: {
      seconds: round(exp.seconds), runs_per_s: round(RUNS / exp.seconds), artifact_mib_per_s: round(artifactMiB / exp.seconds),
      stored_mib: round(exp.job.result.stored_bytes / MiB), runner_peak_rss_mib: round(exp.rss.peak_rss_sampled_bytes / MiB), cpu_s: exp.cpu,
    },
    restore: {
      seconds: round(res.seconds), runs_per_s: round(RUNS / res.seconds), artifact_mib_per_s: round(artifactMiB / res.seconds),
      runner_peak_rss_mib: round(res.rss.peak_rss_sampled_bytes / MiB), cpu_s: res.cpu,
    },
    runner_vm_hwm_mib: round((res.rss.vm_hwm_bytes ?? 0) / MiB),
    peers: others.map((p) => ({ ...p, ...(p.seconds ? { seconds: round(p.seconds), runs_per_s: round(RUNS / p.seconds), our_export_speedup: round(p.seconds / exp.seconds) } : {}) })),
    target_speedup: 2,
  };
  const line = (label: string, r: { seconds: number; runs_per_s: number; artifact_mib_per_s: number; runner_peak_rss_mib: number; cpu_s: CpuByRole }) =>
    `  ${label}  ${r.seconds} s   ${r.runs_per_s} runs/s   ${r.artifact_mib_per_s} MiB/s   runner peak RSS ${r.runner_peak_rss_mib} MiB   CPU s ${JSON.stringify(r.cpu_s)}`;
  console.log(`
MLflow ${MLFLOW_VERSION} (--workers ${SERVER_WORKERS}): ${RUNS} runs x ${POINTS} metric points, ${LOGGED_MODELS} logged models (registered), ${result.artifact_mib} MiB of artifacts (runs' and models')
${line("our export ", result.export)}
${line("our restore", result.restore)}
${result.peers.map((p) => (p.error ? `  peer: ${p.tool}: FAILED: ${p.error}` : `  peer: ${p.tool}\n               ${p.seconds} s   ${p.runs_per_s} runs/s   our export is ${p.our_export_speedup}x faster   CPU s ${JSON.stringify(p.cpu)}`)).join("\n")}
  target: our export >= 2x faster than the peer`);
  console.log(JSON.stringify(result));
}

const round = (n: number) => Math.round(n * 100) / 100;

try {
  await main();
} finally {
  await cleanup();
}
