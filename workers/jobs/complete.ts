// A runner's final report on a job. The report must be about the job's own
// kind (its result parses with the kind's result schema); the kind's
// completion hook then records what it means (a backup row, a verification,
// a restore time). A job that is not running any more ignores late reports.
import type { JobCompletion } from "../shared/protocol.ts";
import type { JobRow } from "../catalog/schema.ts";
import type { KindContext } from "../context.ts";
import { parseParams } from "./dispatch.ts";
import type { CompletionContext, KindRegistry, Outcome } from "./kind.ts";

export async function completeJob(ctx: KindContext, kinds: KindRegistry, jobId: string, completion: JobCompletion): Promise<JobRow | undefined> {
  const { catalog } = ctx;
  const job = await catalog.getJob(jobId);
  if (!job || job.status !== "running") return job;
  const spec = kinds.get(job.kind);
  if (!spec || spec.runs !== "runner") {
    await catalog.failJob(jobId, { code: "unknown_kind", message: `no runner kind ${job.kind}` }, ctx.now);
  } else {
    const outcome = checkOutcome(spec.result, job.kind, completion);
    if ("refused" in outcome) {
      await catalog.failJob(jobId, { code: "completion_invalid", message: outcome.refused }, ctx.now);
    } else {
      const c: CompletionContext<unknown, unknown> = { ...ctx, job, params: parseParams(spec, job), outcome };
      await (spec.complete ?? settle)(c);
    }
  }
  const settled = await catalog.getJob(jobId);
  await catalog.audit({
    actor: "runner", action: `${job.kind}.${settled?.status ?? "unknown"}`, target: job.backup_id ?? jobId,
    outcome: settled?.status === "succeeded" ? "succeeded" : "failed",
    detail: { job_id: jobId, ...(settled?.error_code ? { error: settled.error_code } : {}) },
  });
  return settled;
}

/** The default completion: the job ends as the runner says, with its result. */
export async function settle(c: CompletionContext<unknown, unknown>): Promise<void> {
  if (c.outcome.status === "succeeded") await c.catalog.succeedJob(c.job.id, c.outcome.result, c.now);
  else await c.catalog.failJob(c.job.id, c.outcome.error, c.now, c.outcome.result);
}

/** A result must be the job's own kind's: a runner (or a stolen job token) cannot report another kind's outcome. */
function checkOutcome(
  schema: import("zod").ZodType<unknown, any>, kind: string, completion: JobCompletion,
): Outcome<unknown> | { refused: string } {
  if (completion.result === undefined) {
    return completion.status === "failed" ? { status: "failed", error: completion.error } : { refused: "a succeeded job must report a result" };
  }
  if (completion.result.kind !== kind) return { refused: `the runner reported a ${completion.result.kind} result for a ${kind} job` };
  const parsed = schema.safeParse(completion.result);
  if (!parsed.success) return { refused: `the ${kind} result is malformed: ${parsed.error.issues[0]?.path.join(".")}: ${parsed.error.issues[0]?.message}` };
  return completion.status === "succeeded"
    ? { status: "succeeded", result: parsed.data }
    : { status: "failed", error: completion.error, result: parsed.data };
}
