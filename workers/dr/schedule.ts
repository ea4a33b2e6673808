// What cron runs do for disaster recovery: the weekly drill on
// dr_test_schedule (when dr_testing_enabled), drills whose job ended without a
// report settled as failed, and the watched conditions evaluated into alerts
// (RPO breached, RTO at risk or breached, replication lag, no recent backup).
import type { Catalog } from "../catalog/catalog.ts";
import type { BackupConfig } from "../config.ts";
import type { Env } from "../env.ts";
import { replicationStatus } from "../storage/status.ts";
import { setAlert } from "./alerts.ts";
import { jobAlert, sourceOf } from "./job-alerts.ts";
import type { JobRow } from "../catalog/schema.ts";
import { settleOrphanedRuns } from "./complete.ts";
import { drSettings } from "./settings.ts";
import { computeRto, computeStatus } from "./status.ts";
import { submitDrill } from "./submit.ts";
import { submitJob } from "../jobs/submit.ts";
import type { ScheduledTask } from "../jobs/kind.ts";
import type { KindContext } from "../context.ts";
import { drCanary } from "./kinds.ts";
import { canaryKey } from "./storage-check.ts";
import { storageBucket } from "../storage/buckets.ts";

/** The weekly drill (dr_test_schedule, when dr_testing_enabled): ASTR-112's test_recovery_procedures. */
export const drTasks: ScheduledTask[] = [
  {
    name: "disaster-recovery drill", cron: (c) => c.dr_test_schedule, enabled: (c) => c.dr_testing_enabled,
    async run(ctx, actor) {
      return [(await submitDrill(ctx, { trigger: "scheduled", actor })).job.id];
    },
  },
];

/** On every cron run: canaries (DR_CANARY), drills whose job ended without a report, and the watched conditions. */
export async function drSweep(ctx: KindContext, cron: string): Promise<string[]> {
  const { env, catalog, config, now } = ctx;
  const ids: string[] = [];
  if (drSettings(env).canary) ids.push(...(await writeCanaries(ctx, cron)));
  try {
    await settleOrphanedRuns(env);
    await evaluateAlerts(env, catalog, config, now);
  } catch (e) {
    // Watching must never stop the schedule's real work.
    console.error(`dr alert evaluation failed: ${(e as Error).message}`);
  }
  return ids;
}

export async function evaluateAlerts(env: Env, catalog: Catalog, config: BackupConfig, now: Date): Promise<void> {
  const settings = drSettings(env);
  const status = await computeStatus(env, catalog, config, now);
  for (const s of status.sources) {
    if (!s.newest_point) continue; // never backed up: "no recent backup" below says so
    const breached = !s.rpo_met;
    await setAlert(env, {
      key: `rpo_breached:${s.domain}:${s.source}`, kind: "rpo_breached", source: `${s.domain} ${s.source}`,
      summary: breached ? `RPO in force ${s.rpo_minutes ?? "∞"} min, target ${s.rpo_target_minutes} min` : "RPO within target",
    }, breached, now);
  }
  for (const r of await computeRto(env, catalog, config)) {
    const bad = r.state === "at_risk" || r.state === "breached";
    await setAlert(env, {
      key: `rto:${r.domain}:${r.source}`, kind: `rto_${r.state}`, source: `${r.domain} ${r.source}`,
      summary: bad ? `implied RTO ${r.implied_rto_minutes} min (${r.state}), target ${r.rto_target_minutes} min` : "RTO within target",
    }, bad, now);
  }
  for (const r of await replicationStatus(env, config, now)) {
    if (!r.replica) continue;
    const lagging = r.seconds_behind > settings.replication_lag_seconds;
    await setAlert(env, {
      key: `replication_lag:${r.bucket}`, kind: "replication_lag", source: r.bucket,
      summary: lagging ? `replica ${r.replica} is ${r.seconds_behind}s behind (threshold ${settings.replication_lag_seconds}s)` : "replica current",
    }, lagging, now);
  }
  // Jobs that failed without a runner's report (runner_lost, dispatch_failed, a setup error) alert here:
  // per kind and source, the newest finished job decides.
  const newest = new Map<string, JobRow>();
  for (const job of await catalog.listJobs({ limit: 200 })) {
    if (job.kind === "dr.drill" || (job.status !== "failed" && job.status !== "succeeded")) continue;
    const key = `${job.kind}:${sourceOf(job)}`;
    if (!newest.has(key)) newest.set(key, job);
  }
  for (const job of newest.values()) await jobAlert(env, job, now);
  // No successful backup within the daily schedule plus grace (the longest regular period of a database's full backups).
  if (config.database_backup_enabled) {
    const limitMs = (24 * 60 + settings.backup_grace_minutes) * 60_000;
    for (const database of Object.keys(config.databases)) {
      const newest = await catalog.latestBackup(database, {});
      const stale = !newest || now.getTime() - Date.parse(newest.created_at) > limitMs;
      await setAlert(env, {
        key: `backup_missing:database:${database}`, kind: "backup_missing", source: `database ${database}`,
        summary: stale ? `no successful backup of ${database} in the last ${Math.round(limitMs / 3_600_000)} h` : "a recent backup exists",
      }, stale, now);
    }
  }
}

/**
 * DR_CANARY, on every cron run: an object in each storage source (written
 * here, through the binding) and a row in each source database (a dr.canary
 * runner job). Drills then measure data loss from the newest canary they
 * find in what they restored.
 */
async function writeCanaries(ctx: KindContext, cron: string): Promise<string[]> {
  const { env, config, now } = ctx;
  for (const s of config.storage_backup_sources) {
    const bucket = storageBucket(env, config, s.bucket);
    await bucket?.put(canaryKey(s.prefix), JSON.stringify({ written_at: now.toISOString() }), { httpMetadata: { contentType: "application/json" } })
      .catch((e: Error) => console.error(`storage canary for ${s.bucket}: ${e.message}`));
  }
  if (!config.database_backup_enabled) return [];
  return [(await submitJob(ctx, drCanary, {}, { actor: `cron:${cron}`, target: "canaries" })).job.id];
}
