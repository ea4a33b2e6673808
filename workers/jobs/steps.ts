// Jobs the Worker runs itself (storage.*), one Queue message per step, so a
// bucket of millions of objects never has to fit in one invocation and a
// failure resumes at the step it failed in, not from the start.
//
// A step is: claim the job (queued -> running), do one bounded piece of work,
// then either settle the job or save the state for the next step and put the
// job back to queued with a message carrying the next step number. A message
// whose step is not the job's current step is a duplicate and is dropped, so
// at-least-once delivery never runs a step twice in parallel chains.
import type { Catalog } from "../catalog/catalog.ts";
import type { JobRow } from "../catalog/schema.ts";
import type { BackupConfig } from "../config.ts";
import type { Env } from "../env.ts";
import { reconcileStep } from "../storage/reconcile.ts";
import { restoreStep } from "../storage/restore.ts";
import { snapshotStep } from "../storage/snapshot.ts";
import { storageGcStep } from "../storage/gc.ts";
import { offsiteStep } from "../storage/offsite-job.ts";
import { StepFailure, type StepHandler, type StepOutcome } from "./step.ts";

const handlers = new Map<string, StepHandler>([
  ["storage.snapshot", snapshotStep],
  ["storage.restore", restoreStep],
  ["storage.reconcile", reconcileStep],
  ["storage.gc", storageGcStep],
  ["storage.offsite", offsiteStep],
]);

export function isStepJob(kind: string): boolean {
  return kind.startsWith("storage.");
}

/** Runs the claimed job's current step; "retry" means the message should be retried with backoff. */
export async function runStep(job: JobRow, env: Env, config: BackupConfig, catalog: Catalog): Promise<"done" | "retry"> {
  const handler = handlers.get(job.kind);
  const now = new Date();
  if (!handler) {
    await catalog.failJob(job.id, { code: "unknown_kind", message: `no step handler for jobs of kind ${job.kind}` }, now);
    return "done";
  }
  let outcome: StepOutcome;
  try {
    const state = job.state ? JSON.parse(job.state) : undefined;
    outcome = await handler({ job, params: JSON.parse(job.params), state, env, config, catalog, now });
  } catch (e) {
    if (e instanceof StepFailure) outcome = { failed: { code: e.code, message: e.message } };
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
