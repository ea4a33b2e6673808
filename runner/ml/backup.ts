// ml.backup: an MLflow tracking server exported through its REST API into
// the repository. Experiments (all active ones, or the ids asked for), their
// runs with params, tags, dataset inputs and every point of every metric
// history, the runs' artifacts streamed through the artifact proxy, and the
// model registry and MLflow 3 logged models (runner/ml/logged-models.ts).
// Runs are exported a few at a time and every list is paged, so memory stays
// bounded by the concurrency, not by the server's size.
import type { MlBackupDispatch, MlBackupResult } from "../../workers/ml/protocol.ts";
import { AppError } from "../../workers/shared/errors.ts";
import type { JobContext } from "../job-context.ts";
import { RUNNER_SETTINGS } from "../settings.ts";
import { BlobWriter, writeMlManifest, type OpenBlob } from "./blobs.ts";
import { exportArtifactTree } from "./artifacts.ts";
import { exportLoggedModels } from "./logged-models.ts";
import { MlflowClient } from "./mlflow-client.ts";
import { forEachLimited } from "../../workers/shared/concurrency.ts";

/** Runs exported at once: each holds one metric page and one artifact's stream position. */
/** get-history page size: the server's own maximum is far larger; this bounds one page's memory (~2 MB). */
const HISTORY_PAGE = 25_000;
const SEARCH_PAGE = 500;

export interface ExportCounts {
  experiments: number;
  runs: number;
  metric_points: number;
  artifacts: number;
  artifact_bytes: number;
  registered_models: number;
  model_versions: number;
  logged_models: number;
  model_artifacts: number;
}

export async function backupMlflow(job: MlBackupDispatch, ctx: JobContext): Promise<MlBackupResult> {
  const started = new Date();
  const repo = ctx.repository;
  const mlflow = new MlflowClient(job.mlflow);
  await mlflow.check();
  const store = new BlobWriter(repo, job);
  await store.knowParent(job.parent_manifest_key);
  const counts: ExportCounts = { experiments: 0, runs: 0, metric_points: 0, artifacts: 0, artifact_bytes: 0, registered_models: 0, model_versions: 0, logged_models: 0, model_artifacts: 0 };
  const report = (phase: string) => ctx.progress({ phase, bytes: store.logical + counts.artifact_bytes, chunks: store.writer.stats.new_chunks });

  const viewType = job.include_deleted ? "ALL" : "ACTIVE_ONLY";
  const experiments = await listExperiments(mlflow, job.experiment_ids, viewType);
  const meta = store.open({ kind: "meta", name: "meta" });
  for (const e of experiments) await meta.record({ type: "experiment", ...e });
  counts.experiments = experiments.length;
  await exportLoggedModels(mlflow, store, meta, experiments.map((e) => e.experiment_id), counts);
  report(`exported ${counts.logged_models} logged models`);
  if (job.registry) await exportRegistry(mlflow, meta, counts);
  await meta.close();

  for (const e of experiments) {
    const runs = mlflow.pages<any>("POST", "runs/search", "runs", { experiment_ids: [e.experiment_id], max_results: SEARCH_PAGE, run_view_type: viewType });
    await forEachLimited(flatten(runs), RUNNER_SETTINGS.mlRunConcurrency, async (run) => {
      await exportRun(mlflow, store, run, counts);
      counts.runs++;
      report(`exported ${counts.runs} runs`);
    });
  }

  report("writing manifest");
  return writeMlManifest(repo, store, {
    format: "astrid-backup/mlflow", backup_id: job.backup_id, source: job.server,
    scope: { experiment_ids: job.experiment_ids ?? "all", registry: job.registry, include_deleted: job.include_deleted ?? false }, counts: { ...counts },
  }, job, started, "ml.backup");
}

async function* flatten<T>(pages: AsyncIterable<T[]>): AsyncGenerator<T> {
  for await (const page of pages) yield* page;
}

async function listExperiments(mlflow: MlflowClient, ids: string[] | undefined, viewType: string): Promise<any[]> {
  if (ids) {
    return Promise.all(ids.map(async (id) => {
      try {
        return (await mlflow.get("experiments/get", { experiment_id: id })).experiment;
      } catch (e) {
        if ((e as AppError).code === "mlflow_not_found" || (e as AppError).code === "mlflow_request_failed") {
          throw new AppError("experiment_not_found", `experiment ${id} does not exist on the MLflow server`);
        }
        throw e;
      }
    }));
  }
  const all: any[] = [];
  for await (const page of mlflow.pages<any>("POST", "experiments/search", "experiments", { max_results: 1000, view_type: viewType })) all.push(...page);
  return all.sort((a, b) => Number(a.experiment_id) - Number(b.experiment_id) || String(a.experiment_id).localeCompare(b.experiment_id));
}

/**
 * Registered models with their tags and aliases (registered-models/get has
 * the aliases; search does not) and every version, with source, run link,
 * tags, stage and description.
 */
async function exportRegistry(mlflow: MlflowClient, meta: OpenBlob, counts: ExportCounts): Promise<void> {
  for await (const page of mlflow.pages<any>("GET", "registered-models/search", "registered_models", { max_results: "1000" })) {
    for (const listed of page) {
      const { registered_model: model } = await mlflow.get("registered-models/get", { name: listed.name });
      const { latest_versions: _, ...rest } = model;
      await meta.record({ type: "registered_model", ...rest });
      counts.registered_models++;
      const filter = `name='${String(listed.name).replace(/'/g, "\\'")}'`;
      const versions: any[] = [];
      for await (const vs of mlflow.pages<any>("GET", "model-versions/search", "model_versions", { filter, max_results: "1000" })) versions.push(...vs);
      versions.sort((a, b) => Number(a.version) - Number(b.version));
      for (const v of versions) await meta.record({ type: "model_version", ...v });
      counts.model_versions += versions.length;
    }
  }
}

/** One run: a blob of records (header, metric pages) and one blob per artifact file. */
async function exportRun(mlflow: MlflowClient, store: BlobWriter, run: any, counts: ExportCounts): Promise<void> {
  const info = run.info;
  const id: string = info.run_id;
  const blob = store.open({ kind: "run", name: id, run_id: id, experiment_id: info.experiment_id });
  await blob.record({
    type: "run", info, params: run.data?.params ?? [], tags: run.data?.tags ?? [], dataset_inputs: run.inputs?.dataset_inputs ?? [],
    // MLflow 3 lineage: the logged models the run used and produced (by source model id).
    model_inputs: run.inputs?.model_inputs ?? [], model_outputs: run.outputs?.model_outputs ?? [],
  });
  const keys = [...new Set<string>((run.data?.metrics ?? []).map((m: any) => m.key))].sort();
  for (const key of keys) {
    for await (const page of mlflow.pages<any>("GET", "metrics/get-history", "metrics", { run_id: id, metric_key: key, max_results: String(HISTORY_PAGE) })) {
      await blob.record({ type: "metrics", key, points: page.map((m) => [m.step ?? 0, m.timestamp ?? 0, numberOf(m.value)]) });
      counts.metric_points += page.length;
    }
  }
  await blob.close();
  // Runs are exported side by side: await first, then add (`counts.artifacts += await …` would read the
  // count before the await and lose what the other runs added meanwhile).
  const artifacts = await exportArtifactTree(mlflow, store, info.artifact_uri, `run ${id}`, (path) => ({ kind: "artifact", name: `${id}/${path}`, run_id: id, experiment_id: info.experiment_id, path }), counts);
  counts.artifacts += artifacts;
}

/** NaN and infinities come back from MLflow's JSON as strings; keep them as such. */
function numberOf(v: unknown): number | string {
  return typeof v === "number" ? v : String(v);
}
