// Alerts about ordinary jobs, evaluated by the DR watch task (kinds.ts): per
// kind and source, the newest finished job decides; a failed backup, verify
// or restore fires "job_failed" (whatever failed it: a runner's report,
// runner_lost, a dispatch that gave up), the next success resolves it; a
// verify that found damage fires "backup_corrupt" for that backup.
import type { JobRow } from "../catalog/schema.ts";
import type { KindContext } from "../context.ts";
import { setAlert } from "./alerts.ts";

/** What a job is about, for the alert key: its database, server, dataset or bucket, else its backup. */
export function sourceOf(job: JobRow): string {
  const p = JSON.parse(job.params) as Record<string, unknown>;
  const named = p.database ?? p.server ?? p.dataset ?? p.bucket ?? job.backup_id ?? p.backup_id;
  return typeof named === "string" ? named : "-";
}

/** The job_failed alert of a job's kind and source, firing while the newest such job failed. */
export async function jobAlert(ctx: KindContext, job: JobRow): Promise<void> {
  const failed = job.status === "failed";
  const source = sourceOf(job);
  const summary = failed ? `${job.kind} ${job.id} failed: ${job.error_code}: ${job.error_message ?? ""}` : `${job.kind} ${job.id} succeeded`;
  await setAlert(ctx, { key: `job_failed:${job.kind}:${source}`, kind: "job_failed", source: `${job.kind} ${source}`, summary }, failed);
  if (failed && job.error_code === "integrity_error" && job.backup_id && job.kind.endsWith(".verify")) {
    await setAlert(ctx, { key: `backup_corrupt:${job.backup_id}`, kind: "backup_corrupt", source: job.backup_id, summary: job.error_message ?? "damaged chunks" }, true);
  }
}
