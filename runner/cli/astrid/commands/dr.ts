// Disaster recovery: a drill (restore everything into scratch copies and
// check it), the scenario catalogue and a scenario's simulation.
import type { Command, Context } from "../context.ts";
import { printJson, WAIT_OPTION } from "../context.ts";
import { EXIT, type ExitCode } from "../errors.ts";
import { formatDuration, renderTable } from "../table.ts";
import { watchJob } from "../wait.ts";

/** Waits for the drill's job, then shows its run; a run that did not pass is a failure (exit 1) even if its job succeeded. */
async function waitForRun(ctx: Context, runId: string): Promise<ExitCode> {
  const job = await watchJob(ctx, runId);
  const run = await ctx.api.call("get", "/dr/runs/{id}", { params: { id: runId } });
  if (ctx.json) printJson(ctx, run);
  else {
    ctx.out(`run ${run.run_id} (${run.kind}): ${run.status}${run.duration_ms ? ` in ${formatDuration(run.duration_ms)}` : ""}`);
    if (run.results?.length) {
      ctx.out(renderTable([
        { header: "DOMAIN", value: (r) => r.domain },
        { header: "SOURCE", value: (r) => r.source },
        { header: "RESULT", value: (r) => (r.passed ? "passed" : "FAILED") },
      ], run.results));
    }
    for (const e of run.errors) ctx.out(`  ${e}`);
    if (run.runbook) ctx.out(`runbook: ${run.runbook}`);
  }
  return job.status === "failed" || run.status === "failed" ? EXIT.failed : EXIT.ok;
}

export const drill: Command = {
  name: "drill",
  summary: "Run a DR drill: restore every domain's newest restore point into scratch copies and validate them (a job)",
  usage: "[--wait]",
  options: { ...WAIT_OPTION },
  async run(ctx, { values }) {
    const answer = await ctx.api.call("post", "/backup/test-recovery", { body: {} });
    if (!values.wait) {
      if (ctx.json) return printJson(ctx, answer);
      const p = answer.restore_points;
      ctx.out(`drill ${answer.run_id} ${answer.status}: ${p.databases.length} databases, ${p.ml.length} ML servers, ${p.storage.length} storage sources${p.catalog ? ", the catalog" : ""}`);
      for (const m of answer.missing) ctx.out(`  nothing to restore: ${m.domain} ${m.source} (${m.reason})`);
      ctx.note(`follow: astrid-backup jobs wait ${answer.job_id}`);
      return;
    }
    return waitForRun(ctx, answer.run_id);
  },
};

export const scenarioList: Command = {
  name: "scenario list",
  summary: "The disaster scenarios and what simulating each does",
  usage: "",
  async run(ctx) {
    const { scenarios } = await ctx.api.call("get", "/dr/scenarios");
    if (ctx.json) return printJson(ctx, { scenarios });
    ctx.out(renderTable([
      { header: "SCENARIO", value: (s) => s.name },
      { header: "SIMULATED", value: (s) => (s.simulated ? "yes" : "no") },
      { header: "SUMMARY", value: (s) => s.summary },
    ], scenarios));
  },
};

export const scenarioRun: Command = {
  name: "scenario run",
  summary: "Simulate a disaster scenario on scratch copies, following its runbook section (a job)",
  usage: "<scenario> [--database <name>] [--table <schema.table>] [--before <iso-8601>] [--wait]",
  positionals: { min: 1, max: 1 },
  options: { database: { type: "string" }, table: { type: "string" }, before: { type: "string" }, ...WAIT_OPTION },
  async run(ctx, { positionals, values }) {
    const answer = await ctx.api.call("post", "/dr/scenarios/{name}/simulate", {
      params: { name: positionals[0]! },
      body: {
        ...(values.database ? { database: values.database as string } : {}), ...(values.table ? { table: values.table as string } : {}),
        ...(values.before ? { before: values.before as string } : {}),
      },
    });
    if (!values.wait) {
      if (ctx.json) return printJson(ctx, answer);
      ctx.out(`scenario ${answer.scenario}: run ${answer.run_id} ${answer.status}`);
      ctx.note(`follow: astrid-backup jobs wait ${answer.job_id}`);
      return;
    }
    return waitForRun(ctx, answer.run_id);
  },
};
