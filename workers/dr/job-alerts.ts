// Alerts raised by ordinary jobs as they settle: a failed backup, verify or
// restore fires "job_failed" for its kind and source, the next success of the
// same kind and source resolves it; a verify that finds damage fires
// "backup_corrupt" for that backup. A scheduled job that succeeds pings the
// dead-man's switch. Nothing here may fail the job: errors are logged.
import type { JobRow } from "../catalog/schema.ts";
import type { Env } from "../env.ts";
import { pingDeadman, setAlert } from "./alerts.ts";

/** What a job is about, for the alert key: its database, server, dataset or bucket, else its backup. */
export function sourceOf(job: JobRow): string {
  const p = JSON.parse(job.params) as Record<string, unknown>;
  const named = p.database ?? p.server ?? p.dataset ?? p.bucket ?? job.backup_id ?? p.backup_id;
  return typeof named === "string" ? named : "-";
}

/** The job_failed alert of a job's kind and source, firing while the newest such job failed. */
export async function jobAlert(env: Env, job: JobRow, at?: Date): Promise<void> {
  const failed = job.status === "failed";
  const source = sourceOf(job);
  const summary = failed ? `${job.kind} ${job.id} failed: ${job.error_code}: ${job.error_message ?? ""}` : `${job.kind} ${job.id} succeeded`;
  await setAlert(env, { key: `job_failed:${job.kind}:${source}`, kind: "job_failed", source: `${job.kind} ${source}`, summary }, failed, at);
}

export async function afterJobSettled(env: Env, job: JobRow): Promise<void> {
  if (job.kind === "dr.drill") return; // drills raise their own alert (complete.ts)
  try {
    const failed = job.status === "failed";
    await jobAlert(env, job);
    if ((job.kind === "database.verify" || job.kind === "ml.verify") && failed && job.error_code === "integrity_error" && job.backup_id) {
      await setAlert(env, { key: `backup_corrupt:${job.backup_id}`, kind: "backup_corrupt", source: job.backup_id, summary: job.error_message ?? "damaged chunks" }, true);
    }
    if (!failed && job.requested_by.startsWith("cron:")) await pingDeadman(env);
  } catch (e) {
    console.error(`alerts for job ${job.id}: ${(e as Error).message}`);
  }
}
