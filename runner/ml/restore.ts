// ml.restore: an ML backup recreated on an MLflow server through its REST
// API. Experiments are matched by name; runs are created with their original
// start time, params, tags, every metric point (original step and timestamp),
// dataset inputs and artifacts byte for byte, then closed with their original
// status and end time; then the model registry, with versions pointing at the
// restored runs and their original version numbers, aliases and stages.
//
// MLflow gives imported runs new ids. Each restored run carries
// astrid.source_run_id (its original id) and, once complete,
// astrid.restored_from (the backup id); a second restore finds complete runs
// by that tag and skips them, and replaces a run a failed restore left half
// done, so restoring twice duplicates nothing.
import { checkedAddress } from "../target-address.ts";
import type { MlBlob, MlManifest } from "../../workers/shared/format.ts";
import type { MlRestoreDispatch, MlRestoreResult } from "../../workers/ml/protocol.ts";
import type { RepositoryClient } from "../repository/client.ts";
import { chunkOpener } from "../repository/codec.ts";
import { AppError } from "../../workers/shared/errors.ts";
import type { JobContext } from "../job-context.ts";
import { RUNNER_SETTINGS } from "../settings.ts";
import { blobRecords, readMlManifest } from "./blobs.ts";
import { uploadArtifacts } from "./artifacts.ts";
import { restoreLoggedModels, type RunLinks } from "./logged-models.ts";
import { MlflowClient } from "./mlflow-client.ts";
import { forEachLimited } from "../../workers/shared/concurrency.ts";

export const SOURCE_RUN_TAG = "astrid.source_run_id";
export const RESTORED_TAG = "astrid.restored_from";

/** runs/log-batch limits (MLflow 3): 1000 metrics, 100 params, 100 tags, 1000 items, 1 MB. */
const BATCH = { metrics: 1000, params: 100, tags: 100, items: 1000, bytes: 900_000 };

interface RestoredRun extends RunLinks {
  oldUri: string;
  newUri: string;
  parent?: string;
  /** The run was deleted on the source (an include_deleted backup): deleted again once everything is linked. */
  deleted: boolean;
}

export async function restoreMl(job: MlRestoreDispatch, ctx: JobContext): Promise<MlRestoreResult> {
  const started = Date.now();
  const repo = ctx.repository;
  const manifest = await readMlManifest(repo, job.manifest_key);
  if (manifest.format !== "astrid-backup/mlflow") throw new AppError("wrong_backup_kind", `${job.backup_id} is a training-data snapshot, not an MLflow backup`);
  // A target given as a URL: every address of its host checked now, every request sent to the checked one.
  const address = job.target_policy ? await checkedAddress(new URL(job.mlflow.tracking_uri).hostname, job.target_policy) : undefined;
  const mlflow = new MlflowClient(job.mlflow, { address });
  await mlflow.check();
  const open = chunkOpener(job.identities, job.chunk_id_key);
  const result: MlRestoreResult = {
    kind: "ml.restore", backup_id: job.backup_id, target: job.target_label, experiments: 0, runs_created: 0, runs_existing: 0,
    artifacts: 0, artifact_bytes: 0, registered_models: 0, model_versions: 0, run_id_map: {}, experiment_id_map: {}, duration_ms: 0,
    logged_models: 0, logged_models_existing: 0, logged_model_id_map: {}, model_versions_skipped: 0, registry_times: {}, warnings: [],
  };
  const report = (phase: string) => ctx.progress({ phase, bytes: result.artifact_bytes, chunks: result.runs_created + result.runs_existing });

  const metaBlob = manifest.blobs.find((b) => b.kind === "meta");
  if (!metaBlob) throw new AppError("manifest_invalid", `${job.manifest_key} has no meta blob`);
  const experiments: any[] = [];
  const models: any[] = [];
  const versions: any[] = [];
  const loggedModels: any[] = [];
  for await (const r of blobRecords(repo, manifest, metaBlob, open)) {
    if (r.type === "experiment") experiments.push(r);
    else if (r.type === "logged_model") loggedModels.push(r);
    else if (r.type === "registered_model") models.push(r);
    else if (r.type === "model_version") versions.push(r);
  }
  const wanted = job.experiment_ids ? new Set(job.experiment_ids) : undefined;
  const missing = [...(wanted ?? [])].filter((id) => !experiments.some((e) => e.experiment_id === id));
  if (missing.length) throw new AppError("experiment_not_found", `experiment ${missing.join(", ")} is not in backup ${job.backup_id}`);

  for (const e of experiments) {
    if (wanted && !wanted.has(e.experiment_id)) continue;
    result.experiment_id_map[e.experiment_id] = await ensureExperiment(mlflow, e);
    result.experiments++;
  }

  const artifactsOf = new Map<string, MlBlob[]>();
  for (const b of manifest.blobs) if (b.kind === "artifact") artifactsOf.set(b.run_id!, [...(artifactsOf.get(b.run_id!) ?? []), b]);
  const runBlobs = manifest.blobs.filter((b) => b.kind === "run" && result.experiment_id_map[b.experiment_id!] !== undefined);
  // Runs an earlier restore created, by original id: one paged search per experiment instead of one per run.
  const earlier = new Map<string, any[]>();
  for (const id of new Set(Object.values(result.experiment_id_map))) {
    const filter = `tags.\`${SOURCE_RUN_TAG}\` LIKE '%'`;
    for await (const page of mlflow.pages<any>("POST", "runs/search", "runs", { experiment_ids: [id], filter, run_view_type: "ALL", max_results: 1000 })) {
      for (const r of page) {
        const old = (r.data?.tags ?? []).find((t: any) => t.key === SOURCE_RUN_TAG)?.value;
        if (old) earlier.set(old, [...(earlier.get(old) ?? []), r]);
      }
    }
  }
  const restored = new Map<string, RestoredRun>();
  await forEachLimited(runBlobs, RUNNER_SETTINGS.mlRunConcurrency, async (blob) => {
    const found = earlier.get(blob.run_id!) ?? [];
    const run = await restoreRun(mlflow, repo, manifest, blob, found, artifactsOf.get(blob.run_id!) ?? [], open, job.backup_id, result);
    restored.set(blob.run_id!, run);
    result.run_id_map[blob.run_id!] = run.id;
    report(`restored ${Object.keys(result.run_id_map).length} of ${runBlobs.length} runs`);
  });
  // Parent/child run links, now that every run has its new id.
  for (const run of restored.values()) {
    const parent = run.parent ? restored.get(run.parent) : undefined;
    if (parent) await mlflow.post("runs/set-tag", { run_id: run.id, key: "mlflow.parentRunId", value: parent.id });
  }

  report("restoring logged models");
  await restoreLoggedModels(mlflow, repo, manifest, open, loggedModels, result.experiment_id_map, restored, job.backup_id, RESTORED_TAG, result);

  if (job.registry) {
    report("restoring the model registry");
    for (const m of models) {
      await restoreModel(mlflow, m, versions.filter((v) => v.name === m.name), restored, result);
      result.registered_models++;
    }
  }

  // Deleted on the source (include_deleted backups): deleted again, last, since MLflow only links to active runs.
  for (const run of restored.values()) {
    if (run.deleted) await mlflow.post("runs/delete", { run_id: run.id }).catch(ignoreGone);
  }
  for (const e of experiments) {
    const id = result.experiment_id_map[e.experiment_id];
    if (id && e.lifecycle_stage === "deleted") await mlflow.post("experiments/delete", { experiment_id: id }).catch(ignoreGone);
  }
  result.duration_ms = Date.now() - started;
  return result;
}

async function ensureExperiment(mlflow: MlflowClient, e: any): Promise<string> {
  let existing: any;
  try {
    existing = (await mlflow.get("experiments/get-by-name", { experiment_name: e.name })).experiment;
  } catch (err) {
    if ((err as AppError).code !== "mlflow_not_found") throw err;
  }
  if (existing?.lifecycle_stage === "deleted") await mlflow.post("experiments/restore", { experiment_id: existing.experiment_id });
  const id: string = existing?.experiment_id ?? (await mlflow.post("experiments/create", { name: e.name })).experiment_id;
  for (const t of e.tags ?? []) await mlflow.post("experiments/set-experiment-tag", { experiment_id: id, key: t.key, value: t.value });
  return id;
}

async function restoreRun(
  mlflow: MlflowClient, repo: RepositoryClient, manifest: MlManifest, blob: MlBlob, found: any[], artifacts: MlBlob[],
  open: ReturnType<typeof chunkOpener>, backupId: string, result: MlRestoreResult,
): Promise<RestoredRun> {
  const oldId = blob.run_id!;
  const experimentId = result.experiment_id_map[blob.experiment_id!]!;
  let runId: string | undefined;
  let newUri = "";
  let header: any;
  for (const r of found) {
    const complete = (r.data?.tags ?? []).some((t: any) => t.key === RESTORED_TAG);
    if (complete && !runId) {
      runId = r.info.run_id;
      newUri = r.info.artifact_uri;
      // Deleted by an earlier restore of a deleted run: active again while models are linked to it.
      if (r.info.lifecycle_stage === "deleted") await mlflow.post("runs/restore", { run_id: runId });
    } else if (!complete && r.info.lifecycle_stage !== "deleted") {
      await mlflow.post("runs/delete", { run_id: r.info.run_id }); // a restore that failed part-way: redo the run
    }
  }
  if (runId) {
    for await (const r of blobRecords(repo, manifest, blob, open)) {
      header = r;
      break;
    }
    result.runs_existing++;
    return restoredRun(runId, newUri, header);
  }

  const batch = new LogBatcher(mlflow);
  for await (const r of blobRecords(repo, manifest, blob, open)) {
    if (r.type === "run") {
      header = r;
      const created = (await mlflow.post("runs/create", {
        experiment_id: experimentId, start_time: r.info.start_time, run_name: r.info.run_name,
        tags: [{ key: SOURCE_RUN_TAG, value: oldId }],
      })).run;
      runId = created.info.run_id as string;
      newUri = created.info.artifact_uri;
      batch.runId = runId;
      const tags = r.tags.filter((t: any) => t.key !== "mlflow.parentRunId");
      batch.keyValues(r.params, tags);
      if (r.dataset_inputs.length) await logInputs(mlflow, runId, r.dataset_inputs);
    } else if (r.type === "metrics") {
      for (const [step, timestamp, value] of r.points) await batch.metric({ key: r.key, value, timestamp, step });
    }
  }
  await batch.flush();
  if (!runId || !header) throw new AppError("manifest_invalid", `run blob ${oldId} has no run record`);

  await uploadArtifacts(mlflow, repo, manifest, open, newUri, artifacts, result);
  const info = header.info;
  await mlflow.post("runs/update", { run_id: runId, status: info.status, ...(info.end_time ? { end_time: info.end_time } : {}) });
  await mlflow.post("runs/set-tag", { run_id: runId, key: RESTORED_TAG, value: backupId });
  result.runs_created++;
  return restoredRun(runId, newUri, header);
}

function restoredRun(id: string, newUri: string, header: any): RestoredRun {
  return {
    id, oldUri: header.info.artifact_uri, newUri, parent: parentOf(header), deleted: header.info.lifecycle_stage === "deleted",
    modelInputs: header.model_inputs ?? [], modelOutputs: header.model_outputs ?? [],
  };
}

/** Deleting what is already gone is not a failure. */
function ignoreGone(e: unknown): void {
  if ((e as AppError).code !== "mlflow_not_found") throw e;
}

/**
 * runs/log-inputs. Datasets are stored once per experiment, and two runs
 * logging the same new dataset at once can race on the server's unique key;
 * the loser succeeds when retried, as the dataset then exists.
 */
async function logInputs(mlflow: MlflowClient, runId: string, datasets: unknown[]): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await mlflow.post("runs/log-inputs", { run_id: runId, datasets });
      return;
    } catch (e) {
      if (attempt >= 4 || !/UNIQUE constraint|IntegrityError|duplicate key/i.test((e as Error).message)) throw e;
      await new Promise((r) => setTimeout(r, 100 * attempt));
    }
  }
}

function parentOf(header: any): string | undefined {
  return header?.tags?.find((t: any) => t.key === "mlflow.parentRunId")?.value;
}

/**
 * Gathers a run's params, tags and metric points into runs/log-batch calls
 * within MLflow's limits (per call: 100 params, 100 tags, 1,000 metrics,
 * 1,000 items in all, 1 MB), so a typical run needs one call.
 */
class LogBatcher {
  runId = "";
  private params: { key: string; value: string }[] = [];
  private tags: { key: string; value: string }[] = [];
  private metrics: { key: string; value: unknown; timestamp: number; step: number }[] = [];
  private bytes = 0;
  private readonly mlflow: MlflowClient;
  constructor(mlflow: MlflowClient) {
    this.mlflow = mlflow;
  }

  keyValues(params: { key: string; value: string }[], tags: { key: string; value: string }[]): void {
    this.params.push(...params);
    this.tags.push(...tags);
    for (const kv of [...params, ...tags]) this.bytes += kv.key.length + kv.value.length + 32;
  }

  async metric(m: { key: string; value: unknown; timestamp: number; step: number }): Promise<void> {
    this.metrics.push(m);
    this.bytes += m.key.length + 80;
    const items = Math.min(this.params.length, BATCH.params) + Math.min(this.tags.length, BATCH.tags) + this.metrics.length;
    if (this.metrics.length >= BATCH.metrics || items >= BATCH.items || this.bytes >= BATCH.bytes) await this.send();
  }

  /** Sends everything still gathered. */
  async flush(): Promise<void> {
    while (this.params.length + this.tags.length + this.metrics.length > 0) await this.send();
  }

  private async send(): Promise<void> {
    let bytes = 0;
    const take = <T extends { key: string }>(list: T[], max: number, size: (x: T) => number) => {
      let n = 0;
      while (n < list.length && n < max && bytes + size(list[n]!) <= BATCH.bytes) bytes += size(list[n++]!);
      return list.splice(0, n);
    };
    const kv = (x: { key: string; value: string }) => x.key.length + x.value.length + 32;
    const params = take(this.params, BATCH.params, kv);
    const tags = take(this.tags, BATCH.tags, kv);
    const metrics = take(this.metrics, Math.min(BATCH.metrics, BATCH.items - params.length - tags.length), (m) => m.key.length + 80);
    this.bytes = Math.max(0, this.bytes - bytes);
    if (params.length + tags.length + metrics.length === 0) throw new AppError("mlflow_request_failed", "a param, tag or metric is larger than one log-batch call allows");
    await this.mlflow.post("runs/log-batch", {
      run_id: this.runId, ...(params.length ? { params } : {}), ...(tags.length ? { tags } : {}), ...(metrics.length ? { metrics } : {}),
    });
  }
}

/**
 * A registered model and its versions. Version numbers are kept: a number
 * the source no longer has (a deleted version), or one whose run or logged
 * model is not part of this restore (an experiment-scoped restore; a warning
 * names it), is created and deleted again, as MLflow never reuses a number.
 * A version already on the target (an earlier restore) is left as it is, so
 * a second restore adds nothing. The source's creation and update times,
 * which MLflow's API cannot set, go into astrid.source_* tags and the result.
 */
async function restoreModel(mlflow: MlflowClient, m: any, versions: any[], runs: Map<string, RestoredRun>, result: MlRestoreResult): Promise<void> {
  let existing: any;
  try {
    existing = (await mlflow.get("registered-models/get", { name: m.name })).registered_model;
  } catch (e) {
    if ((e as AppError).code !== "mlflow_not_found") throw e;
  }
  const times = result.registry_times[m.name] = { ...timesOf(m), versions: {} as Record<string, ReturnType<typeof timesOf>> };
  const tags = [...(m.tags ?? []), ...timeTags(m)];
  if (!existing) await mlflow.post("registered-models/create", { name: m.name, description: m.description ?? "", tags });
  else for (const t of tags) await mlflow.post("registered-models/set-tag", { name: m.name, key: t.key, value: t.value });

  const present = new Set<number>();
  for await (const page of mlflow.pages<any>("GET", "model-versions/search", "model_versions", { filter: `name='${m.name.replace(/'/g, "\\'")}'`, max_results: "1000" })) {
    for (const v of page) present.add(Number(v.version));
  }
  const byNumber = new Map(versions.map((v) => [Number(v.version), v]));
  const target = new Map<number, VersionTarget | undefined>();
  for (const [n, v] of byNumber) target.set(n, versionTarget(v, runs, result.logged_model_id_map));
  const top = Math.max(0, ...byNumber.keys());
  // A placeholder for a missing number needs a source the server accepts: the newest restorable version's.
  const placeholder = [...target.entries()].filter(([, t]) => t).sort(([a], [b]) => b - a)[0]?.[1];
  const highestPresent = Math.max(0, ...present);
  const restorable = new Set<number>(present);
  for (let n = 1; n <= top; n++) {
    if (present.has(n)) continue;
    const v = byNumber.get(n);
    const t = target.get(n);
    if (v && !t) {
      result.model_versions_skipped++;
      result.warnings.push(`model ${m.name} version ${n} skipped: its source ${v.source} (run ${v.run_id || "none"}) is not part of this restore`);
    }
    if (n < highestPresent) {
      // A number below the target's highest cannot be created any more: fine for a deleted or skipped one.
      if (!v || !t) continue;
      throw new AppError("registry_conflict", `model ${m.name}: version ${n} is missing on the target, which already has version ${highestPresent}; restore into a server without this model`);
    }
    const use = t ?? placeholder;
    if (!use) continue; // nothing of this model is restorable: the numbers stay free
    const created = (await mlflow.post("model-versions/create", {
      name: m.name, source: use.source, ...(use.run_id ? { run_id: use.run_id } : {}), ...(use.model_id ? { model_id: use.model_id } : {}),
      ...(t && v?.run_link ? { run_link: v.run_link } : {}),
      description: t ? v.description ?? "" : "(placeholder for a deleted or skipped version; removed again)", tags: t ? [...(v.tags ?? []), ...timeTags(v)] : [],
    })).model_version;
    if (Number(created.version) !== n) {
      throw new AppError("registry_conflict", `model ${m.name}: the target assigned version ${created.version} where the backup has ${n}; restore into a server without this model`);
    }
    if (!t) {
      await mlflow.delete("model-versions/delete", { name: m.name, version: String(n) }).catch(() => {});
      continue;
    }
    restorable.add(n);
    times.versions[String(n)] = timesOf(v);
    if (v.current_stage && v.current_stage !== "None") {
      await mlflow.post("model-versions/transition-stage", { name: m.name, version: String(n), stage: v.current_stage, archive_existing_versions: false });
    }
    result.model_versions++;
  }
  for (const a of m.aliases ?? []) {
    if (restorable.has(Number(a.version))) await mlflow.post("registered-models/alias", { name: m.name, alias: a.alias, version: String(a.version) });
    else result.warnings.push(`model ${m.name}: alias ${a.alias} not set, its version ${a.version} is not restored`);
  }
}

interface VersionTarget {
  source: string;
  run_id?: string;
  model_id?: string;
}

/**
 * Where a version points on the target, or undefined when the run or logged
 * model it needs is not restored. A "models:/m-…" source (MLflow 3) becomes
 * the restored logged model's; runs:/ and mlflow-artifacts:/ sources are
 * rewritten to the restored run; any other source (s3://…) is kept as it is.
 */
function versionTarget(v: any, runs: Map<string, RestoredRun>, models: Record<string, string>): VersionTarget | undefined {
  const run = v.run_id ? runs.get(v.run_id) : undefined;
  const loggedModel = /^models:\/(m-[0-9a-f]+)(\/.*)?$/.exec(v.source ?? "");
  if (loggedModel) {
    const id = models[loggedModel[1]!];
    if (!id) return undefined;
    return { source: `models:/${id}${loggedModel[2] ?? ""}`, model_id: id, ...(run ? { run_id: run.id } : {}) };
  }
  if (v.run_id && !run) return /^(runs|mlflow-artifacts):/.test(v.source ?? "") ? undefined : { source: v.source };
  return { source: rewriteSource(v.source, v.run_id, run), ...(run ? { run_id: run.id } : {}) };
}

/** A version's source, pointed at the restored run when it pointed at the original one. */
function rewriteSource(source: string, oldRunId: string | undefined, run: RestoredRun | undefined): string {
  if (!run || !oldRunId) return source;
  if (source.startsWith(run.oldUri)) return run.newUri + source.slice(run.oldUri.length);
  return source.split(oldRunId).join(run.id);
}

function timesOf(x: any): { creation_timestamp?: number; last_updated_timestamp?: number } {
  return {
    ...(x.creation_timestamp ? { creation_timestamp: Number(x.creation_timestamp) } : {}),
    ...(x.last_updated_timestamp ? { last_updated_timestamp: Number(x.last_updated_timestamp) } : {}),
  };
}

function timeTags(x: any): { key: string; value: string }[] {
  const t = timesOf(x);
  return [
    ...(t.creation_timestamp ? [{ key: "astrid.source_creation_time", value: new Date(t.creation_timestamp).toISOString() }] : []),
    ...(t.last_updated_timestamp ? [{ key: "astrid.source_last_updated_time", value: new Date(t.last_updated_timestamp).toISOString() }] : []),
  ];
}
