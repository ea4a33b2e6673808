// Following jobs to their end: GET /jobs/:id until succeeded or failed, with
// the live progress on stderr. The exit code says whether every job succeeded.
import { type Context, type JobView, printJson } from "./context.ts";
import { EXIT, type ExitCode } from "./errors.ts";
import { plainLine, ProgressMeter, progressLine, type ProgressTotals } from "./progress.ts";
import { formatDuration } from "./table.ts";

/** Plain lines (not a terminal): one when the phase or status changes, else at most one per this many ms. */
const PLAIN_EVERY_MS = 10_000;

const ended = (job: JobView) => job.status === "succeeded" || job.status === "failed";

/** A restore or verify reads a known backup: its size is the bar's 100%. */
async function totalsFor(ctx: Context, job: JobView): Promise<ProgressTotals> {
  if (!job.backup_id || !/\.(restore|verify)$/.test(job.kind)) return {};
  try {
    const backup = await ctx.api.call("get", "/backups/{id}", { params: { id: job.backup_id } });
    return { bytes: backup.logical_bytes, chunks: backup.chunk_count };
  } catch {
    return {};
  }
}

export async function watchJob(ctx: Context, jobId: string, hint?: ProgressTotals): Promise<JobView> {
  let job = await ctx.api.call("get", "/jobs/{id}", { params: { id: jobId } });
  const meter = new ProgressMeter(hint ?? (await totalsFor(ctx, job)));
  let lastKey = "";
  let lastPrinted = 0;
  let drawn = false;
  for (;;) {
    const now = ctx.now();
    if (job.progress) meter.add(job.progress, now);
    if (ended(job)) break;
    const phase = job.progress?.phase ?? (job.status === "queued" ? (job.queued_reason ?? "queued") : job.status);
    if (ctx.tty) {
      ctx.draw(`${job.id.slice(0, 12)} ${progressLine(phase, meter.state())}`);
      drawn = true;
    } else {
      const key = `${job.status}|${phase}`;
      if (key !== lastKey || now - lastPrinted >= PLAIN_EVERY_MS) {
        ctx.note(plainLine(job.id, job.status, job.progress ? phase : job.queued_reason, meter.state()));
        lastKey = key;
        lastPrinted = now;
      }
    }
    await ctx.sleep(ctx.pollMs);
    job = await ctx.api.call("get", "/jobs/{id}", { params: { id: jobId } });
  }
  if (drawn) ctx.draw("");
  const took = job.started_at && job.finished_at ? ` in ${formatDuration(Date.parse(job.finished_at) - Date.parse(job.started_at))}` : "";
  ctx.note(job.status === "succeeded"
    ? `job ${job.id} (${job.kind}) succeeded${took}`
    : `job ${job.id} (${job.kind}) failed${took}: ${job.error ? `${job.error.code}: ${job.error.message}` : "no error recorded"}`);
  return job;
}

export interface Started {
  job_id: string;
  status: string;
  queued_behind?: string;
}

/**
 * The end of every command that starts jobs. Without --wait: the API's answer
 * (--json) or the job ids and how to follow them. With --wait: the jobs
 * followed to their end, their final views printed (--json), exit 1 if one failed.
 */
export async function finishStarted(
  ctx: Context, answer: unknown, started: Started[], opts: { wait: boolean; hint?: ProgressTotals; describe?: string },
): Promise<ExitCode> {
  if (!opts.wait) {
    if (ctx.json) printJson(ctx, answer);
    else {
      for (const s of started) {
        ctx.out(`job ${s.job_id} ${s.status}${opts.describe ? `: ${opts.describe}` : ""}${s.queued_behind ? ` (waits for job ${s.queued_behind})` : ""}`);
      }
      ctx.note(`follow: astrid-backup jobs wait ${started.map((s) => s.job_id).join(" ")}`);
    }
    return EXIT.ok;
  }
  const jobs: JobView[] = [];
  for (const s of started) jobs.push(await watchJob(ctx, s.job_id, opts.hint));
  return reportJobs(ctx, jobs);
}

/** Final views of followed jobs: JSON (one object, or an array for several) or a line each; exit 1 if any failed. */
export function reportJobs(ctx: Context, jobs: JobView[]): ExitCode {
  if (ctx.json) printJson(ctx, jobs.length === 1 ? jobs[0] : jobs);
  else {
    for (const job of jobs) {
      const what = job.backup_id ? ` backup ${job.backup_id}` : "";
      ctx.out(job.status === "succeeded"
        ? `${job.id} succeeded${what}`
        : `${job.id} failed${what}: ${job.error ? `${job.error.code}: ${job.error.message}` : "-"}`);
    }
  }
  return jobs.some((j) => j.status === "failed") ? EXIT.failed : EXIT.ok;
}
