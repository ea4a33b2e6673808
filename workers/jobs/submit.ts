// Creating a job: catalog row first, then the Queue message, then the audit
// line. If the Queue refuses, the job is failed on the spot rather than left
// queued forever. The kind's own schema checks the parameters here, at the
// door, not later at dispatch.
import type { z } from "zod";
import { randomId } from "../crypto.ts";
import { AppError } from "../shared/errors.ts";
import type { JobRow } from "../catalog/schema.ts";
import type { KindContext } from "../context.ts";
import type { JobKindSpec } from "./kind.ts";

export interface JobRequest {
  actor: string;
  /** What the audit log names as the operation's object. */
  target: string;
  /** The backup the job writes or works on, when there is one. */
  backup_id?: string;
}

export function newJobId(): string {
  return `job-${Date.now().toString(36)}-${randomId(8)}`;
}

/** A submitted job, and the running job of the same concurrency key it will wait behind, if any. */
export interface Submitted {
  job: JobRow;
  queued_behind?: string;
}

export async function submitJob<P>(ctx: KindContext, spec: JobKindSpec<P>, params: z.input<JobKindSpec<P>["params"]>, req: JobRequest): Promise<Submitted> {
  const { env, catalog } = ctx;
  const checked = spec.params.safeParse(params);
  if (!checked.success) {
    const issue = checked.error.issues[0];
    throw new AppError("invalid_params", `${spec.kind}: ${issue?.path.join(".") || "params"}: ${issue?.message}`, 400);
  }
  const concurrency_key = spec.concurrencyKey?.(checked.data);
  const ahead = concurrency_key ? await catalog.activeJobWithKey(concurrency_key) : undefined;
  const job = await catalog.createJob({
    id: newJobId(), kind: spec.kind, params: checked.data, requested_by: req.actor,
    ...(req.backup_id ? { backup_id: req.backup_id } : {}), ...(concurrency_key ? { concurrency_key } : {}),
  });
  try {
    await env.JOBS.send({ job_id: job.id });
  } catch (e) {
    await catalog.failJob(job.id, { code: "queue_unavailable", message: `could not enqueue: ${(e as Error).message}` }, new Date());
    await catalog.audit({ actor: req.actor, action: spec.kind, target: req.target, outcome: "failed", detail: { job_id: job.id } });
    throw new AppError("queue_unavailable", "the job queue refused the job; nothing was started", 503);
  }
  await catalog.audit({ actor: req.actor, action: spec.kind, target: req.target, outcome: "accepted", detail: { job_id: job.id } });
  return { job, ...(ahead ? { queued_behind: ahead.id } : {}) };
}
