// Cron triggers: wrangler.toml lists the crons, the registry's scheduled
// tasks say what each one means under the config. Every run also sweeps jobs
// whose runner stopped reporting and resumes Worker-run steps that were lost.
import { openCatalog } from "../catalog/catalog.ts";
import { loadConfig, type BackupConfig } from "../config.ts";
import type { Env } from "../env.ts";
import type { KindRegistry, ScheduledTask } from "./kind.ts";
import { STEP_LEASE_SECONDS } from "./steps.ts";

/** The tasks a cron expression runs under this config (none while BACKUP_ENABLED is false). */
export function tasksForCron(kinds: KindRegistry, config: BackupConfig, cron: string): ScheduledTask[] {
  if (!config.backup_enabled) return [];
  return kinds.tasks.filter((t) => t.cron(config) === cron && t.enabled(config));
}

export async function runSchedule(cron: string, env: Env, kinds: KindRegistry, now = new Date()): Promise<string[]> {
  const config = loadConfig(env); // throws loudly: a scheduled run with a bad config fails visibly
  const catalog = openCatalog(env.CATALOG);
  await catalog.expireStaleJobs(now, config.job_lease_seconds, kinds.workerKinds());
  for (const lost of await catalog.resumeLostSteps(now, STEP_LEASE_SECONDS, kinds.workerKinds())) await env.JOBS.send({ job_id: lost.id, step: lost.step });
  const tasks = tasksForCron(kinds, config, cron);
  if (tasks.length === 0) console.log(`cron "${cron}": nothing scheduled for it`);
  const ctx = { env, config, catalog, now };
  const jobIds: string[] = [];
  for (const task of tasks) jobIds.push(...(await task.run(ctx, `cron:${cron}`)));
  return jobIds;
}
