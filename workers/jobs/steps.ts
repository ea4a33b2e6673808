// Jobs the Worker runs itself (kinds declared `runs: "worker"`), one Queue
// message per step, so a bucket of millions of objects never has to fit in
// one invocation and a failure resumes at the step it failed in, not from
// the start.
//
// A step is: claim the job (queued -> running), do one bounded piece of work,
// then either settle the job or save the state for the next step and put the
// job back to queued with a message carrying the next step number. A message
// whose step is not the job's current step is a duplicate and is dropped, so
// at-least-once delivery never runs a step twice in parallel chains.
import { AppError } from "../shared/errors.ts";
import type { JobRow } from "../catalog/schema.ts";
import type { KindContext } from "../context.ts";
import { parseParams } from "./dispatch.ts";
import type { StepOutcome, WorkerKind } from "./kind.ts";

/** A step has a Queue consumer's whole wall-clock budget (15 minutes) before it counts as lost. */
export const STEP_LEASE_SECONDS = 15 * 60;

/** Runs the claimed job's current step; "retry" means the message should be retried with backoff. */
export async function runStep(spec: WorkerKind<unknown>, job: JobRow, ctx: KindContext): Promise<"done" | "retry"> {
  const { catalog, env } = ctx;
  let outcome: StepOutcome;
  try {
    const state = job.state ? JSON.parse(job.state) : undefined;
    outcome = await spec.step({ ...ctx, job, params: parseParams(spec, job), state });
  } catch (e) {
    if (e instanceof AppError) outcome = { failed: { code: e.code, message: e.message } };
    else {
      // Transient (an R2 or D1 hiccup): the same step runs again from its saved state.
      await catalog.requeueJob(job.id, { code: "step_failed", message: `step ${job.step}: ${(e as Error).message}` });
      return "retry";
    }
  }
  if ("next" in outcome) {
    const advanced = await catalog.advanceJob(job.id, job.step, outcome.next, outcome.progress, new Date());
    if (advanced) await env.JOBS.send({ job_id: job.id, step: job.step + 1 });
  } else if ("done" in outcome) {
    await catalog.succeedJob(job.id, outcome.done, new Date());
  } else {
    await catalog.failJob(job.id, outcome.failed, new Date(), outcome.result);
  }
  const settled = await catalog.getJob(job.id);
  if (settled && settled.status !== "queued") {
    await catalog.audit({
      actor: "worker", action: `${job.kind}.${settled.status}`, target: job.backup_id ?? job.id,
      outcome: settled.status === "succeeded" ? "succeeded" : "failed",
      detail: { job_id: job.id, ...(settled.error_code ? { error: settled.error_code } : {}) },
    });
  }
  return "done";
}
