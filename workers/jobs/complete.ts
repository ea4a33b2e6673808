// A runner's final report on a job. Before a backup is listed, its manifest
// is read back from R2 and must agree with the report: the catalog never
// lists a backup whose manifest is missing, malformed or different.
import { DatabaseManifest, manifestKey, MlManifest, mlManifestKey } from "../shared/format.ts";
import {
  DatabaseBackupParams, MlBackupParams, TrainingDataParams, type BackupResult, type JobCompletion, type MlBackupResult, type MlVerifyResult,
  type VerifyResult,
} from "../shared/protocol.ts";
import type { Catalog } from "../catalog/catalog.ts";
import type { JobRow } from "../catalog/schema.ts";
import type { Env } from "../env.ts";
import { loadConfig } from "../config.ts";
import type { z } from "zod";
import { submitJob } from "./submit.ts";
import { completeDrill } from "../dr/complete.ts";
import { afterJobSettled } from "../dr/job-alerts.ts";

export async function completeJob(env: Env, catalog: Catalog, jobId: string, completion: JobCompletion): Promise<JobRow | undefined> {
  const now = new Date();
  const job = await catalog.getJob(jobId);
  if (!job || job.status !== "running") return job;
  if (job.kind === "dr.drill") {
    await completeDrill(env, catalog, job, completion, now);
  } else if (completion.status === "failed") {
    const failed = completion.result;
    if (failed?.kind === "database.verify" || failed?.kind === "ml.verify") await recordVerify(catalog, failed, now);
    await catalog.failJob(jobId, completion.error, now, completion.result);
  } else {
    const r = completion.result;
    if (r.kind === "database.backup") {
      const problem = await manifestProblem(env, job, r);
      if (problem) await catalog.failJob(jobId, { code: "manifest_mismatch", message: problem }, now);
      else if (await catalog.recordBackup(jobId, DatabaseBackupParams.parse(JSON.parse(job.params)), r, now)) await verifyAfterBackup(env, catalog, r.backup_id);
    } else if (r.kind === "ml.backup" || r.kind === "training_data.backup") {
      const problem = await mlManifestProblem(env, job, r);
      const source = r.kind === "ml.backup" ? MlBackupParams.parse(JSON.parse(job.params)).server : TrainingDataParams.parse(JSON.parse(job.params)).dataset;
      const domain = r.kind === "ml.backup" ? "ml" : "training_data";
      if (problem) await catalog.failJob(jobId, { code: "manifest_mismatch", message: problem }, now);
      else if (await catalog.recordBackup(jobId, { database: source, type: "full", domain }, r, now)) await verifyAfterBackup(env, catalog, r.backup_id, "ml.verify");
    } else if (r.kind === "database.verify" || r.kind === "ml.verify") {
      await recordVerify(catalog, r, now);
      await catalog.succeedJob(jobId, r, now);
    } else if (r.kind === "database.restore" || r.kind === "ml.restore") {
      await catalog.recordRestore(r.backup_id, Math.round(r.duration_ms));
      await catalog.succeedJob(jobId, r, now);
    } else {
      await catalog.succeedJob(jobId, r, now);
    }
  }
  const settled = await catalog.getJob(jobId);
  await catalog.audit({
    actor: "runner", action: `${job.kind}.${settled?.status ?? "unknown"}`, target: job.backup_id ?? jobId,
    outcome: settled?.status === "succeeded" ? "succeeded" : "failed",
    detail: { job_id: jobId, ...(settled?.error_code ? { error: settled.error_code } : {}) },
  });
  if (settled) await afterJobSettled(env, settled);
  return settled;
}

/** Chunks are shared: damage found through one backup marks every backup whose manifest uses the chunk. */
async function recordVerify(catalog: Catalog, r: VerifyResult | MlVerifyResult, at: Date) {
  await catalog.recordVerification(r.backup_id, { at, depth: r.depth, ok: r.ok, problems: r.problems });
  for (const other of r.affected_backups ?? []) {
    if (other === r.backup_id) continue;
    await catalog.recordVerification(other, { at, depth: r.depth, ok: false, problems: [`damaged chunks found by verifying ${r.backup_id}`, ...r.problems] });
  }
}

/** Queues the configured verification of a new backup: the RPO counts verified restore points only. */
async function verifyAfterBackup(env: Env, catalog: Catalog, backupId: string, kind: "database.verify" | "ml.verify" = "database.verify") {
  const depth = loadConfig(env).database_verify_after_backup;
  if (depth === "off") return;
  try {
    await submitJob(env, catalog, { kind, params: { backup_id: backupId, depth }, backup_id: backupId, actor: "policy:verify_after_backup", target: backupId });
  } catch (e) {
    // The backup is recorded either way; an unverified one just does not count toward the RPO yet.
    console.error(`could not queue the verification of ${backupId}: ${(e as Error).message}`);
  }
}

/** The manifest the runner reported: present at the expected key, well-formed, and agreeing with the report. */
async function checkManifest<T>(
  env: Env, job: JobRow, r: { backup_id: string; manifest_key: string }, expectedKey: string, schema: z.ZodType<T>, agrees: (m: T) => boolean,
): Promise<string | undefined> {
  if (r.backup_id !== job.backup_id) return `runner reported backup ${r.backup_id} for job of ${job.backup_id}`;
  if (r.manifest_key !== expectedKey) return `unexpected manifest key ${r.manifest_key}`;
  const object = await env.BACKUPS.get(r.manifest_key);
  if (!object) return `manifest ${r.manifest_key} is missing from the repository`;
  let json: unknown;
  try {
    json = await object.json();
  } catch {
    return `manifest ${r.manifest_key} is malformed: not JSON`;
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) return `manifest ${r.manifest_key} is malformed: ${parsed.error.issues[0]?.message}`;
  return agrees(parsed.data) ? undefined : `manifest ${r.manifest_key} disagrees with the runner's report`;
}

const manifestProblem = (env: Env, job: JobRow, r: BackupResult) =>
  checkManifest(env, job, r, manifestKey(r.backup_id), DatabaseManifest,
    (m) => m.dump.sha256 === r.sha256 && m.chunks.length === r.chunk_count && m.dump.logical_bytes === r.logical_bytes);

const mlManifestProblem = (env: Env, job: JobRow, r: MlBackupResult) =>
  checkManifest(env, job, r, mlManifestKey(r.backup_id), MlManifest,
    (m) => m.digest === r.sha256 && m.chunks.length === r.chunk_count && m.logical_bytes === r.logical_bytes && m.backup_id === r.backup_id);
