// MLflow 3 logged models (LoggedModel, ids "m-…"): what mlflow.<flavor>.log_model
// creates in MLflow 3, and what a registered version's "models:/m-…" source
// points at. Backed up with the experiments they belong to: the model's info
// (name, status, model type, source run, tags), params and metrics (with
// their steps, runs and dataset links) as a `logged_model` record of the meta
// blob, its artifacts (MLmodel, the serialized model, requirements, conda and
// python_env files, input example, signature) as `model_artifact` blobs in
// the same deduplicated store as run artifacts.
//
// Restored after the runs: created linked to the restored source run, its
// artifacts uploaded, its metrics logged against the restored runs (with
// model id and dataset), the runs' model inputs and outputs re-linked, then
// finalized with its original status. MLflow gives it a new id; it carries
// astrid.source_model_id and, once complete, astrid.restored_from, so a
// second restore reuses it and one a failed restore left half done is
// deleted and redone.
import type { MlBlob, MlManifest } from "../../workers/shared/format.ts";
import type { RepositoryClient } from "../repository/client.ts";
import type { chunkOpener } from "../repository/codec.ts";
import type { OpenBlob, BlobWriter } from "./blobs.ts";
import { exportArtifactTree, uploadArtifacts } from "./artifacts.ts";
import type { MlflowClient } from "./mlflow-client.ts";

export const SOURCE_MODEL_TAG = "astrid.source_model_id";
const SEARCH_PAGE = 100;
/** runs/log-batch takes at most 1,000 metrics per call. */
const METRIC_BATCH = 1000;

/** Every logged model of the experiments: a record in `meta`, and one blob per artifact file. */
export async function exportLoggedModels(
  mlflow: MlflowClient, store: BlobWriter, meta: OpenBlob, experimentIds: string[],
  counts: { logged_models: number; model_artifacts: number; artifact_bytes: number },
): Promise<void> {
  for (const experimentId of experimentIds) {
    for await (const page of mlflow.pages<any>("POST", "logged-models/search", "models", { experiment_ids: [experimentId], max_results: SEARCH_PAGE })) {
      for (const model of page) {
        const info = model.info;
        const id: string = info.model_id;
        await meta.record({ type: "logged_model", info, data: { params: model.data?.params ?? [], metrics: model.data?.metrics ?? [] } });
        counts.logged_models++;
        const files = await exportArtifactTree(mlflow, store, info.artifact_uri, `logged model ${id}`,
          (path) => ({ kind: "model_artifact", name: `${id}/${path}`, model_id: id, experiment_id: info.experiment_id, path }), counts);
        counts.model_artifacts += files; // added after the await, as in backup.ts
      }
    }
  }
}

/** What a restore needs of a restored run: its new id and its model lineage from the backup. */
export interface RunLinks {
  id: string;
  modelInputs: { model_id: string }[];
  modelOutputs: { model_id: string; step?: number | string }[];
}

export interface LoggedModelTally {
  logged_models: number;
  logged_models_existing: number;
  artifacts: number;
  artifact_bytes: number;
  logged_model_id_map: Record<string, string>;
  warnings: string[];
}

/**
 * Restores the logged models of the restored experiments; returns nothing,
 * fills `tally.logged_model_id_map` (source id -> new id).
 */
export async function restoreLoggedModels(
  mlflow: MlflowClient, repo: RepositoryClient, manifest: MlManifest, open: ReturnType<typeof chunkOpener>,
  models: any[], experimentIdMap: Record<string, string>, runs: Map<string, RunLinks>, backupId: string, restoredTag: string,
  tally: LoggedModelTally,
): Promise<void> {
  const wanted = models.filter((m) => experimentIdMap[m.info.experiment_id] !== undefined);
  if (wanted.length === 0) return;
  const artifactsOf = new Map<string, MlBlob[]>();
  for (const b of manifest.blobs) if (b.kind === "model_artifact") artifactsOf.set(b.model_id!, [...(artifactsOf.get(b.model_id!) ?? []), b]);

  // Models an earlier restore created, by source id.
  const earlier = new Map<string, any[]>();
  for (const id of new Set(wanted.map((m) => experimentIdMap[m.info.experiment_id]!))) {
    for await (const page of mlflow.pages<any>("POST", "logged-models/search", "models", { experiment_ids: [id], max_results: SEARCH_PAGE })) {
      for (const m of page) {
        const old = tagOf(m.info.tags, SOURCE_MODEL_TAG);
        if (old) earlier.set(old, [...(earlier.get(old) ?? []), m]);
      }
    }
  }

  for (const m of wanted) {
    const oldId: string = m.info.model_id;
    let newId: string | undefined;
    for (const found of earlier.get(oldId) ?? []) {
      if (tagOf(found.info.tags, restoredTag) && !newId) newId = found.info.model_id;
      else await mlflow.delete(`logged-models/${encodeURIComponent(found.info.model_id)}`, {}); // half done: redo
    }
    if (newId) {
      tally.logged_models_existing++;
    } else {
      newId = await restoreOne(mlflow, repo, manifest, open, m, experimentIdMap, runs, artifactsOf.get(oldId) ?? [], tally);
      await mlflow.patch(`logged-models/${encodeURIComponent(newId)}/tags`, { tags: [{ key: restoredTag, value: backupId }] });
      tally.logged_models++;
    }
    tally.logged_model_id_map[oldId] = newId;
  }
}

async function restoreOne(
  mlflow: MlflowClient, repo: RepositoryClient, manifest: MlManifest, open: ReturnType<typeof chunkOpener>, m: any,
  experimentIdMap: Record<string, string>, runs: Map<string, RunLinks>, artifacts: MlBlob[], tally: LoggedModelTally,
): Promise<string> {
  const info = m.info;
  const oldId: string = info.model_id;
  const sourceRun = info.source_run_id ? runs.get(info.source_run_id) : undefined;
  const tags = [...(info.tags ?? []), { key: SOURCE_MODEL_TAG, value: oldId }];
  // A source run outside the restored experiments: the link is kept as a tag, not lost silently.
  if (info.source_run_id && !sourceRun) tags.push({ key: "astrid.source_run_id", value: info.source_run_id });
  const created = (await mlflow.post("logged-models", {
    experiment_id: experimentIdMap[info.experiment_id], name: info.name, ...(info.model_type ? { model_type: info.model_type } : {}),
    ...(sourceRun ? { source_run_id: sourceRun.id } : {}), params: m.data?.params ?? [], tags,
  })).model;
  const newId: string = created.info.model_id;
  await uploadArtifacts(mlflow, repo, manifest, open, created.info.artifact_uri, artifacts, tally);

  // Metrics are logged through the run that logged them: runs/log-batch with the model id.
  const byRun = new Map<string, any[]>();
  let orphans = 0;
  for (const x of m.data?.metrics ?? []) {
    const run = x.run_id ? runs.get(x.run_id) : undefined;
    if (!run) {
      orphans++;
      continue;
    }
    byRun.set(run.id, [...(byRun.get(run.id) ?? []), {
      key: x.key, value: x.value, timestamp: x.timestamp ?? 0, step: x.step ?? 0, model_id: newId,
      ...(x.dataset_name ? { dataset_name: x.dataset_name } : {}), ...(x.dataset_digest ? { dataset_digest: x.dataset_digest } : {}),
    }]);
  }
  if (orphans) tally.warnings.push(`logged model ${oldId}: ${orphans} metric(s) logged by runs that are not restored were left out`);
  for (const [runId, metrics] of byRun) {
    for (let i = 0; i < metrics.length; i += METRIC_BATCH) await mlflow.post("runs/log-batch", { run_id: runId, metrics: metrics.slice(i, i + METRIC_BATCH) });
  }

  // Run lineage: the restored runs that produced (runs/outputs) or used (runs/log-inputs) this model.
  for (const run of runs.values()) {
    const outputs = run.modelOutputs.filter((o) => o.model_id === oldId);
    if (outputs.length) await mlflow.post("runs/outputs", { run_id: run.id, models: outputs.map((o) => ({ model_id: newId, step: Number(o.step ?? 0) })) });
    if (run.modelInputs.some((i) => i.model_id === oldId)) await mlflow.post("runs/log-inputs", { run_id: run.id, datasets: [], models: [{ model_id: newId }] });
  }

  if (info.status && info.status !== "LOGGED_MODEL_PENDING") {
    await mlflow.patch(`logged-models/${encodeURIComponent(newId)}`, { model_id: newId, status: info.status });
  }
  return newId;
}

function tagOf(tags: { key: string; value: string }[] | undefined, key: string): string | undefined {
  return tags?.find((t) => t.key === key)?.value;
}
