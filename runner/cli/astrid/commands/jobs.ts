// Jobs: list, show one, wait for some.
import type { Command } from "../context.ts";
import { type JobView, printJson } from "../context.ts";
import { UsageError } from "../errors.ts";
import { formatAge, formatBytes, formatDuration, formatTime, renderFields, renderTable } from "../table.ts";
import { reportJobs, watchJob } from "../wait.ts";
import { limitOf, oneOf } from "./backups.ts";

const STATUSES = ["queued", "running", "succeeded", "failed"] as const;

const took = (j: JobView) => (j.started_at && j.finished_at ? formatDuration(Date.parse(j.finished_at) - Date.parse(j.started_at)) : "-");

function detail(j: JobView): string {
  if (j.error) return `${j.error.code}: ${j.error.message}`;
  if (j.status === "queued" && j.queued_reason) return j.queued_reason;
  if (j.status === "running" && j.progress) return `${j.progress.phase}, ${formatBytes(j.progress.bytes)}${j.progress.chunks ? `, ${j.progress.chunks} chunks` : ""}`;
  return j.backup_id ? `backup ${j.backup_id}` : "";
}

export const jobsList: Command = {
  name: "jobs list",
  summary: "Jobs, newest first",
  usage: "[--status queued|running|succeeded|failed] [--kind <kind>] [--limit <n>]",
  options: { status: { type: "string" }, kind: { type: "string" }, limit: { type: "string" } },
  async run(ctx, { values }) {
    const status = oneOf("status", values.status, STATUSES);
    const limit = limitOf(values);
    const { jobs } = await ctx.api.call("get", "/jobs", {
      query: { ...(status ? { status } : {}), ...(values.kind ? { kind: values.kind as string } : {}), ...(limit ? { limit } : {}) },
    });
    if (ctx.json) return printJson(ctx, { jobs });
    const now = ctx.now();
    ctx.out(renderTable([
      { header: "JOB", value: (j) => j.id },
      { header: "KIND", value: (j) => j.kind },
      { header: "STATUS", value: (j) => j.status },
      { header: "CREATED", value: (j) => formatAge(j.created_at, now) },
      { header: "TOOK", value: took, align: "right" },
      { header: "DETAIL", value: detail },
    ], jobs));
  },
};

export const jobsShow: Command = {
  name: "jobs show",
  summary: "One job: status, progress, result or error",
  usage: "<job-id>",
  positionals: { min: 1, max: 1 },
  async run(ctx, { positionals }) {
    const j = await ctx.api.call("get", "/jobs/{id}", { params: { id: positionals[0]! } });
    if (ctx.json) return printJson(ctx, j);
    const now = ctx.now();
    ctx.out(renderFields([
      ["job", j.id], ["kind", j.kind], ["status", j.status], ["attempts", String(j.attempts)], ["backup", j.backup_id],
      ["created", `${formatTime(j.created_at)} (${formatAge(j.created_at, now)})`], ["started", j.started_at && formatTime(j.started_at)],
      ["finished", j.finished_at && formatTime(j.finished_at)], ["took", j.finished_at ? took(j) : undefined],
      ["waiting for", j.queued_reason],
      ["progress", j.progress ? `${j.progress.phase}, ${formatBytes(j.progress.bytes)}, ${j.progress.chunks} chunks` : undefined],
      ["error", j.error ? `${j.error.code}: ${j.error.message}` : undefined],
    ]));
    if (j.result !== undefined) ctx.out(`result:\n${JSON.stringify(j.result, null, 2)}`);
  },
};

export const jobsWait: Command = {
  name: "jobs wait",
  summary: "Wait for jobs to end, with their live progress; exit 1 if one failed",
  usage: "<job-id>...",
  positionals: { min: 1, max: 100 },
  async run(ctx, { positionals }) {
    if (new Set(positionals).size !== positionals.length) throw new UsageError("a job id is given twice");
    const jobs: JobView[] = [];
    for (const id of positionals) jobs.push(await watchJob(ctx, id));
    return reportJobs(ctx, jobs);
  },
};
