// Runs dispatched jobs: one at a time per job id, a heartbeat while it runs,
// and exactly one completion report at the end, whatever happened.
import { dispatchSecrets, type DispatchBase, type JobCompletion, type JobProgress, type JobResult } from "../workers/shared/protocol.ts";
import { handlers, isFailedVerify } from "./kinds.ts";
import { AppError } from "../workers/shared/errors.ts";
import { scrub } from "./failure.ts";
import type { JobContext } from "./job-context.ts";
import { RepositoryClient } from "./repository/client.ts";

const HEARTBEAT_MS = Number(process.env.RUNNER_HEARTBEAT_MS ?? 5000);

const running = new Map<string, Promise<void>>();
const cancellers = new Map<string, (() => void)[]>();

export function runningJobs(): string[] {
  return [...running.keys()];
}

/** Starts a job unless it is already running here (a redelivered dispatch). */
export function startJob(job: DispatchBase): "started" | "already-running" {
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

async function runJob(job: DispatchBase): Promise<void> {
  const repo = new RepositoryClient(job.repository);
  let latest: JobProgress = { phase: "starting", bytes: 0, chunks: 0 };
  const cancels: (() => void)[] = [];
  cancellers.set(job.job_id, cancels);
  const ctx: JobContext = { repository: repo, progress: (p) => (latest = p), onCancel: (fn) => cancels.push(fn) };
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

function execute(job: DispatchBase, ctx: JobContext): Promise<JobResult> {
  // server.ts parsed the dispatch with this kind's schema before starting it.
  return handlers[job.kind]!.run(job, ctx);
}

/** A verify that found damage is a failed job that still carries its findings. */
function judge(result: JobResult): JobCompletion {
  if (isFailedVerify(result)) {
    const first = result.problems[0] ?? "unknown problem";
    const more = result.problems.length > 1 ? ` (and ${result.problems.length - 1} more)` : "";
    return { status: "failed", error: { code: "integrity_error", message: `${first}${more}` }, result };
  }
  return { status: "succeeded", result };
}

function describeFailure(e: unknown, job: DispatchBase) {
  const message = scrub((e as Error)?.message ?? String(e), dispatchSecrets(job));
  if (e instanceof AppError) return { code: e.code, message };
  return { code: "runner_error", message };
}
