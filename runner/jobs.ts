// Runs dispatched jobs: one at a time per job id, a heartbeat while it runs,
// and exactly one completion report at the end, whatever happened.
import { dispatchSecrets, type JobCompletion, type JobProgress, type JobResult, type RunnerDispatch } from "../workers/shared/protocol.ts";
import { backupDatabase } from "./database/backup.ts";
import { restoreDatabase } from "./database/restore.ts";
import { verifyBackup } from "./database/verify.ts";
import { collectGarbage } from "./repository/gc.ts";
import { backupMlflow } from "./ml/backup.ts";
import { restoreMl } from "./ml/restore.ts";
import { verifyMl } from "./ml/verify.ts";
import { backupTrainingData } from "./ml/training-data.ts";
import { runDrill } from "./dr/drill.ts";
import { writeCanaries } from "./dr/canary.ts";
import { JobFailure, scrub } from "./failure.ts";
import type { JobContext } from "./job-context.ts";
import { RepositoryClient, RepositoryError } from "./repository/client.ts";
import { IntegrityError } from "./repository/chunk-reader.ts";

const HEARTBEAT_MS = Number(process.env.RUNNER_HEARTBEAT_MS ?? 5000);

const running = new Map<string, Promise<void>>();
const cancellers = new Map<string, (() => void)[]>();

export function runningJobs(): string[] {
  return [...running.keys()];
}

/** Starts a job unless it is already running here (a redelivered dispatch). */
export function startJob(job: RunnerDispatch): "started" | "already-running" {
  if (running.has(job.job_id)) return "already-running";
  const done = runJob(job).finally(() => {
    running.delete(job.job_id);
    cancellers.delete(job.job_id);
  });
  running.set(job.job_id, done);
  return "started";
}

/**
 * Stops every running job (their child processes are killed, so each job
 * fails and reports why) and waits up to `graceMs` for the reports to go out.
 */
export async function shutdown(graceMs: number): Promise<void> {
  for (const cancels of cancellers.values()) for (const cancel of cancels) cancel();
  await Promise.race([Promise.allSettled(running.values()), new Promise((r) => setTimeout(r, graceMs))]);
}

async function runJob(job: RunnerDispatch): Promise<void> {
  const repo = new RepositoryClient(job.repository);
  let latest: JobProgress = { phase: "starting", bytes: 0, chunks: 0 };
  const cancels: (() => void)[] = [];
  cancellers.set(job.job_id, cancels);
  const ctx: JobContext = { progress: (p) => (latest = p), onCancel: (fn) => cancels.push(fn) };
  const beat = setInterval(() => repo.progress(job.job_id, latest).catch(() => {}), HEARTBEAT_MS);
  console.log(`job ${job.job_id} (${job.kind}) started`);
  let completion: JobCompletion;
  try {
    completion = judge(await execute(job, ctx));
  } catch (e) {
    completion = { status: "failed", error: describeFailure(e, job) };
  } finally {
    clearInterval(beat);
  }
  console.log(`job ${job.job_id} (${job.kind}) ${completion.status}${completion.status === "failed" ? `: ${completion.error.code}` : ""}`);
  await repo.complete(job.job_id, completion).catch((e: Error) => console.error(`job ${job.job_id}: could not report completion: ${e.message}`));
}

function execute(job: RunnerDispatch, ctx: JobContext): Promise<JobResult> {
  switch (job.kind) {
    case "database.backup": return backupDatabase(job, ctx);
    case "database.verify": return verifyBackup(job, ctx);
    case "database.restore": return restoreDatabase(job, ctx);
    case "repository.gc": return collectGarbage(job, ctx);
    case "ml.backup": return backupMlflow(job, ctx);
    case "ml.restore": return restoreMl(job, ctx);
    case "ml.verify": return verifyMl(job, ctx);
    case "training_data.backup": return backupTrainingData(job, ctx);
    case "dr.drill": return runDrill(job, ctx);
    case "dr.canary": return writeCanaries(job);
  }
}

/** A verify that found damage is a failed job that still carries its findings. */
function judge(result: JobResult): JobCompletion {
  if ((result.kind === "database.verify" || result.kind === "ml.verify") && !result.ok) {
    const first = result.problems[0] ?? "unknown problem";
    const more = result.problems.length > 1 ? ` (and ${result.problems.length - 1} more)` : "";
    return { status: "failed", error: { code: "integrity_error", message: `${first}${more}` }, result };
  }
  return { status: "succeeded", result };
}

function describeFailure(e: unknown, job: RunnerDispatch) {
  const message = scrub((e as Error)?.message ?? String(e), dispatchSecrets(job));
  if (e instanceof JobFailure || e instanceof RepositoryError) return { code: e.code, message };
  if (e instanceof IntegrityError) return { code: "integrity_error", message };
  return { code: "runner_error", message };
}
