// Creating a job: catalog row first, then the Queue message, then the audit
// line. If the Queue refuses, the job is failed on the spot rather than left
// queued forever.
import { randomId } from "../crypto.ts";
import { ApiError } from "../errors.ts";
import type { Catalog } from "../catalog/catalog.ts";
import type { JobRow } from "../catalog/schema.ts";
import type { Env } from "../env.ts";
import type { JobKind } from "../shared/protocol.ts";

export interface JobRequest {
  kind: JobKind;
  params: unknown;
  backup_id?: string;
  actor: string;
  /** What the audit log names as the operation's object. */
  target: string;
}

export function newJobId(): string {
  return `job-${Date.now().toString(36)}-${randomId(8)}`;
}

export async function submitJob(env: Env, catalog: Catalog, req: JobRequest): Promise<JobRow> {
  const job = await catalog.createJob({
    id: newJobId(), kind: req.kind, params: req.params, requested_by: req.actor,
    ...(req.backup_id ? { backup_id: req.backup_id } : {}),
  });
  try {
    await env.JOBS.send({ job_id: job.id });
  } catch (e) {
    await catalog.failJob(job.id, { code: "queue_unavailable", message: `could not enqueue: ${(e as Error).message}` }, new Date());
    await catalog.audit({ actor: req.actor, action: req.kind, target: req.target, outcome: "failed", detail: { job_id: job.id } });
    throw new ApiError(503, "queue_unavailable", "the job queue refused the job; nothing was started");
  }
  await catalog.audit({ actor: req.actor, action: req.kind, target: req.target, outcome: "accepted", detail: { job_id: job.id } });
  return job;
}
