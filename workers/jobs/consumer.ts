// The Queue consumer. A message names a job; the job row decides what happens,
// so a redelivered message finds the job already claimed or finished and does
// nothing. Dispatch failures retry with backoff (max_retries in wrangler.toml),
// then land in the dead-letter queue, whose consumer fails the job with the reason.
// A job that must wait for an exclusive one (garbage collection) is re-sent with a delay.
import { JobMessage } from "../shared/protocol.ts";
import { openCatalog, type Catalog } from "../catalog/catalog.ts";
import { loadConfig, type BackupConfig } from "../config.ts";
import type { Env } from "../env.ts";
import { buildDispatch, JobSetupError } from "./dispatch.ts";
import { runnerClient } from "./runner-client.ts";
import { isStepJob, runStep } from "./steps.ts";
import { STEP_LEASE_SECONDS } from "./step.ts";

export async function consumeJobs(batch: MessageBatch<unknown>, env: Env): Promise<void> {
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
      await giveUp(catalog, parsed.data.job_id, message.attempts);
      message.ack();
      continue;
    }
    const outcome = await startJob(catalog, env, parsed.data.job_id, parsed.data.step);
    if (outcome === "retry") message.retry({ delaySeconds: Math.min(300, 5 * 2 ** message.attempts) });
    // Waiting for an exclusive job is not a failure: a fresh message waits without using up retries.
    else if (outcome === "wait") await env.JOBS.send(parsed.data, { delaySeconds: WAIT_SECONDS });
    if (outcome !== "retry") message.ack();
  }
}

const WAIT_SECONDS = 10;

async function startJob(catalog: Catalog, env: Env, jobId: string, step?: number): Promise<"done" | "retry" | "wait"> {
  let config: BackupConfig;
  const now = new Date();
  try {
    config = loadConfig(env);
  } catch (e) {
    await catalog.failJob(jobId, { code: "config_invalid", message: (e as Error).message }, now);
    return "done";
  }
  const job = await catalog.claimJob(jobId, now, step === undefined ? config.job_lease_seconds : STEP_LEASE_SECONDS, step);
  if (!job) {
    const current = await catalog.getJob(jobId);
    if (!current || (step !== undefined && current.step !== step)) return "done"; // a duplicate for a step already taken
    // A step whose invocation died mid-way: its message comes back; retry until the lease lets it be claimed.
    if (current.status === "running" && isStepJob(current.kind)) return "retry";
    return current.status === "queued" ? "wait" : "done"; // finished, or held by a runner
  }
  if (isStepJob(job.kind)) return runStep(job, env, config, catalog);
  try {
    await runnerClient(env).dispatch(await buildDispatch(job, env, config, catalog, now));
    return "done";
  } catch (e) {
    if (e instanceof JobSetupError) {
      await catalog.failJob(jobId, { code: e.code, message: e.message }, new Date());
      return "done";
    }
    await catalog.requeueJob(jobId, { code: "dispatch_failed", message: (e as Error).message });
    return "retry";
  }
}

async function giveUp(catalog: Catalog, jobId: string, attempts: number): Promise<void> {
  const job = await catalog.getJob(jobId);
  // A Worker-run step still in hand: the cron sweep resumes or fails it (resumeLostSteps), not its stray message.
  if (job && isStepJob(job.kind) && job.status === "running") return;
  const last = job?.error_message ? `; last error: ${job.error_message}` : "";
  await catalog.failJob(jobId, { code: "dispatch_failed", message: `gave up dispatching the job after retries${last}` }, new Date());
  await catalog.audit({ actor: "queue", action: "job.dead_letter", target: jobId, outcome: "failed", detail: { attempts } });
}
