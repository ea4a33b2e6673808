// Disaster recovery's scheduled tasks:
//   drill   the weekly drill on dr_test_schedule, when dr_testing_enabled;
//   watch   on dr_watch_schedule (every 10 minutes, with the lost-job sweep):
//           drills whose job ended without a report settled as failed,
//           DR_CANARY's canaries written, and the watched conditions
//           evaluated into alerts (failed jobs, RPO breached, RTO at risk or
//           breached, replication lag, no recent backup); when nothing is
//           firing, the dead-man's switch is pinged.
import type { KindContext } from "../context.ts";
import type { JobRow } from "../catalog/schema.ts";
import type { ScheduledTask } from "../jobs/kind.ts";
import { submitJob } from "../jobs/submit.ts";
import { replicationStatus } from "../storage/status.ts";
import { storageBucket } from "../storage/buckets.ts";
import { pingDeadman, setAlert } from "./alerts.ts";
import { settleOrphanedRuns } from "./complete.ts";
import { jobAlert, sourceOf } from "./job-alerts.ts";
import { drCanary } from "./kinds.ts";
import { openDrStore } from "./runs.ts";
import { drSettings } from "./settings.ts";
import { computeRto, computeStatus } from "./status.ts";
import { canaryKey } from "./storage-check.ts";
import { submitDrill } from "./submit.ts";

export const drTasks: ScheduledTask[] = [
  {
    name: "DR drill", cron: (c) => c.dr_test_schedule, enabled: (c) => c.dr_testing_enabled,
    run: async (ctx, actor) => [(await submitDrill(ctx, { trigger: "scheduled", actor })).job.id],
  },
  {
    name: "DR watch (alerts, lost drills, canaries)", cron: (c) => c.dr_watch_schedule, enabled: () => true,
    async run(ctx, actor) {
      const ids = drSettings(ctx.config).canary ? await writeCanaries(ctx, actor) : [];
      try {
        await settleOrphanedRuns(ctx);
        await evaluateAlerts(ctx);
        if ((await openDrStore(ctx.env.CATALOG).listAlerts("firing")).length === 0) await pingDeadman(ctx);
      } catch (e) {
        // Watching must never stop the schedule's real work.
        console.error(`dr alert evaluation failed: ${(e as Error).message}`);
      }
      return ids;
    },
  },
];

export async function evaluateAlerts(ctx: KindContext): Promise<void> {
  const { env, catalog, config, now } = ctx;
  const settings = drSettings(config);
  const status = await computeStatus(ctx);
  for (const s of status.sources) {
    if (!s.newest_point) continue; // never backed up: "no recent backup" below says so
    const breached = !s.rpo_met;
    await setAlert(ctx, {
      key: `rpo_breached:${s.domain}:${s.source}`, kind: "rpo_breached", source: `${s.domain} ${s.source}`,
      summary: breached ? `RPO in force ${s.rpo_minutes ?? "∞"} min, target ${s.rpo_target_minutes} min` : "RPO within target",
    }, breached);
  }
  for (const r of await computeRto(ctx)) {
    const bad = r.state === "at_risk" || r.state === "breached";
    await setAlert(ctx, {
      key: `rto:${r.domain}:${r.source}`, kind: `rto_${r.state}`, source: `${r.domain} ${r.source}`,
      summary: bad ? `implied RTO ${r.implied_rto_minutes} min (${r.state}), target ${r.rto_target_minutes} min` : "RTO within target",
    }, bad);
  }
  for (const r of await replicationStatus(env, config, now)) {
    if (!r.replica) continue;
    const lagging = r.seconds_behind > settings.replication_lag_seconds;
    await setAlert(ctx, {
      key: `replication_lag:${r.bucket}`, kind: "replication_lag", source: r.bucket,
      summary: lagging ? `replica ${r.replica} is ${r.seconds_behind}s behind (threshold ${settings.replication_lag_seconds}s)` : "replica current",
    }, lagging);
  }
  // Jobs that failed without a runner's report (runner_lost, dispatch_failed, a setup error) alert here:
  // per kind and source, the newest finished job decides.
  const newest = new Map<string, JobRow>();
  for (const job of await catalog.listJobs({ limit: 200 })) {
    if (job.kind === "dr.drill" || (job.status !== "failed" && job.status !== "succeeded")) continue;
    const key = `${job.kind}:${sourceOf(job)}`;
    if (!newest.has(key)) newest.set(key, job);
  }
  for (const job of newest.values()) await jobAlert(ctx, job);
  // No successful backup within the daily schedule plus grace (the longest regular period of a database's full backups).
  if (config.database_backup_enabled) {
    const limitMs = (24 * 60 + settings.backup_grace_minutes) * 60_000;
    for (const database of Object.keys(config.databases)) {
      const newest = await catalog.latestBackup(database, {});
      const stale = !newest || now.getTime() - Date.parse(newest.created_at) > limitMs;
      await setAlert(ctx, {
        key: `backup_missing:database:${database}`, kind: "backup_missing", source: `database ${database}`,
        summary: stale ? `no successful backup of ${database} in the last ${Math.round(limitMs / 3_600_000)} h` : "a recent backup exists",
      }, stale);
    }
  }
}

/**
 * DR_CANARY, on every cron run: an object in each storage source (written
 * here, through the binding) and a row in each source database (a dr.canary
 * runner job). Drills then measure data loss from the newest canary they
 * find in what they restored.
 */
async function writeCanaries(ctx: KindContext, actor: string): Promise<string[]> {
  const { env, config, now } = ctx;
  for (const s of config.storage_backup_sources) {
    const bucket = storageBucket(env, config, s.bucket);
    await bucket?.put(canaryKey(s.prefix), JSON.stringify({ written_at: now.toISOString() }), { httpMetadata: { contentType: "application/json" } })
      .catch((e: Error) => console.error(`storage canary for ${s.bucket}: ${e.message}`));
  }
  if (!config.database_backup_enabled) return [];
  return [(await submitJob(ctx, drCanary, {}, { actor, target: "canaries" })).job.id];
}
