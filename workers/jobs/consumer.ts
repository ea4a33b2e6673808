// The Queue consumer. A message names a job; the job row decides what happens,
// so a redelivered message finds the job already claimed or finished and does
// nothing. Dispatch failures retry with backoff (max_retries in wrangler.toml),
// then land in the dead-letter queue, whose consumer fails the job with the reason.
// A job that must wait (for an exclusive job, for the running job of its
// concurrency key, or for room on the runner) is re-sent with a delay and
// says why it waits.
import { JobMessage } from "../shared/protocol.ts";
import { AppError } from "../shared/errors.ts";
import { openCatalog, type Catalog, type ClaimRules } from "../catalog/catalog.ts";
import { loadConfig, type BackupConfig } from "../config.ts";
import type { Env } from "../env.ts";
import { buildDispatch } from "./dispatch.ts";
import type { KindRegistry } from "./kind.ts";
import { runnerClient } from "./runner-client.ts";
import { runStep, STEP_LEASE_SECONDS } from "./steps.ts";

export async function consumeJobs(batch: MessageBatch<unknown>, env: Env, kinds: KindRegistry): Promise<void> {
  const catalog = openCatalog(env.CATALOG);
  const deadLetters = batch.queue.endsWith("-dlq");
  for (const message of batch.messages) {
    const parsed = JobMessage.safeParse(message.body);
    if (!parsed.success) {
      console.error(`dropping malformed job message ${message.id}`);
      message.ack();
      continue;
    }
    if (deadLetters) {
      await giveUp(catalog, kinds, parsed.data.job_id, message.attempts);
      message.ack();
      continue;
    }
    const outcome = await startJob(catalog, env, kinds, parsed.data.job_id, parsed.data.step);
    if (outcome === "retry") message.retry({ delaySeconds: Math.min(300, 5 * 2 ** message.attempts) });
    // Waiting is not a failure: a fresh message waits without using up retries.
    else if (outcome === "wait") await env.JOBS.send(parsed.data, { delaySeconds: WAIT_SECONDS });
    if (outcome !== "retry") message.ack();
  }
}

const WAIT_SECONDS = 10;

/** What the claim must respect, from the registry and the config. */
export function claimRules(kinds: KindRegistry, config: BackupConfig): ClaimRules {
  return {
    exclusiveKinds: kinds.exclusiveKinds(), longRunningKinds: kinds.longRunningKinds(),
    runnerKinds: kinds.all().filter((k) => k.runs === "runner" && !k.longRunning).map((k) => k.kind), runnerMaxJobs: config.runner_max_jobs,
  };
}

async function startJob(catalog: Catalog, env: Env, kinds: KindRegistry, jobId: string, step?: number): Promise<"done" | "retry" | "wait"> {
  let config: BackupConfig;
  const now = new Date();
  try {
    config = loadConfig(env);
  } catch (e) {
    await catalog.failJob(jobId, { code: "config_invalid", message: (e as Error).message }, now);
    return "done";
  }
  const current = await catalog.getJob(jobId);
  if (!current) return "done";
  const spec = kinds.get(current.kind);
  if (!spec) {
    await catalog.failJob(jobId, { code: "unknown_kind", message: `no handler for jobs of kind ${current.kind}` }, now);
    return "done";
  }
  const lease = spec.runs === "worker" ? STEP_LEASE_SECONDS : config.job_lease_seconds;
  const claim = await catalog.claimJob(jobId, now, lease, claimRules(kinds, config), step);
  if ("job" in claim) {
    const job = claim.job;
    const ctx = { env, config, catalog, now };
    if (spec.runs === "worker") return runStep(spec, job, ctx, kinds);
    try {
      await runnerClient(env).dispatch(await buildDispatch(spec, job, ctx));
      return "done";
    } catch (e) {
      if (e instanceof AppError) {
        await catalog.failJob(jobId, { code: e.code, message: e.message }, new Date());
        return "done";
      }
      await catalog.requeueJob(jobId, { code: "dispatch_failed", message: (e as Error).message });
      return "retry";
    }
  }
  if (claim.waiting) return "wait"; // queued, with its reason on the row
  const row = await catalog.getJob(jobId);
  if (!row || (step !== undefined && row.step !== step)) return "done"; // a duplicate for a step already taken
  // A step whose invocation died mid-way: its message comes back; retry until the lease lets it be claimed.
  if (row.status === "running" && spec.runs === "worker") return "retry";
  return row.status === "queued" ? "wait" : "done"; // finished, or held by a runner
}

async function giveUp(catalog: Catalog, kinds: KindRegistry, jobId: string, attempts: number): Promise<void> {
  const job = await catalog.getJob(jobId);
  // A Worker-run step still in hand: the cron sweep resumes or fails it (resumeLostSteps), not its stray message.
  if (job && kinds.get(job.kind)?.runs === "worker" && job.status === "running") return;
  const last = job?.error_message ? `; last error: ${job.error_message}` : "";
  await catalog.failJob(jobId, { code: "dispatch_failed", message: `gave up dispatching the job after retries${last}` }, new Date());
  await catalog.audit({ actor: "queue", action: "job.dead_letter", target: jobId, outcome: "failed", detail: { attempts } });
}
