// GET /overview: one row per protected source (each database, storage
// source, MLflow server and training dataset) with what an operator asks
// first: the newest restorable point and the RPO in force against the
// target, the last verify, the last drill and the RTO it implies, continuous
// protection where it exists, and when the next scheduled run fires. Rows
// are ordered failing first. Built from the same figures as GET /dr/status
// and GET /dr/rto, so the console and the alerts cannot disagree.
import type { BackupRow } from "../catalog/schema.ts";
import type { BackupConfig } from "../config.ts";
import type { KindContext } from "../context.ts";
import { computeRto, computeStatus } from "../dr/status.ts";
import { storageStatus } from "../storage/status.ts";
import { openStorageCatalog } from "../catalog/storage-catalog.ts";
import { openContinuousCatalog, rpoSeconds } from "../catalog/continuous-catalog.ts";
import { nextCronRun } from "./cron.ts";
import { DOMAINS, type Domain } from "./domains.ts";
import { Health, type Overview, type OverviewRow } from "./views.ts";
import type { z } from "zod";

/** Failing first: the order of the schema's own enum (views.ts). */
const HEALTH_ORDER = Health.options;
/** Recent backups looked at per source for the newest point and the newest verify. */
const RECENT = 20;

export type { OverviewRow };

/** The RPO against its target: over it is at risk, over twice it is breached (a missed run, not a late one). */
export function rpoState(rpoMinutes: number | null, target: number): OverviewRow["rpo_state"] {
  if (rpoMinutes === null) return "unknown";
  if (rpoMinutes <= target) return "ok";
  return rpoMinutes <= 2 * target ? "at_risk" : "breached";
}

/** The schedules that produce a domain's restore points, when they are on. */
function schedulesOf(config: BackupConfig, domain: Domain): string[] {
  if (!config.backup_enabled) return [];
  switch (domain) {
    case "database":
      return config.database_backup_enabled
        ? [config.database_backup_schedule, config.database_incremental_schedule, config.database_archive_schedule] : [];
    case "storage":
      return config.storage_backup_enabled ? [config.storage_backup_schedule] : [];
    case "ml":
    case "training_data":
      return config.ml_backup_enabled ? [config.ml_backup_schedule] : [];
  }
}

export function nextRun(config: BackupConfig, domain: Domain, now: Date): OverviewRow["next_run"] {
  let best: OverviewRow["next_run"] = null;
  for (const schedule of schedulesOf(config, domain)) {
    const at = nextCronRun(schedule, now);
    if (at && (!best || at.toISOString() < best.at)) best = { at: at.toISOString(), schedule };
  }
  return best;
}

const minutesBetween = (from: string, now: Date) => Math.round(((now.getTime() - Date.parse(from)) / 60_000) * 10) / 10;

export async function computeOverview(ctx: KindContext): Promise<z.infer<typeof Overview>> {
  const { env, catalog, config, now } = ctx;
  const [status, rto, storage] = await Promise.all([computeStatus(ctx), computeRto(ctx), storageStatus(env, config, now)]);
  const snapshots = openStorageCatalog(env.CATALOG);
  const archive = openContinuousCatalog(env.CATALOG);
  const target = config.rpo_target_minutes;

  const sources: { domain: Domain; source: string }[] = [
    ...Object.keys(config.databases).map((source) => ({ domain: "database" as const, source })),
    ...config.storage_backup_sources.map((s) => ({ domain: "storage" as const, source: `${s.bucket}/${s.prefix}` })),
    ...Object.keys(config.ml_servers).map((source) => ({ domain: "ml" as const, source })),
    ...Object.keys(config.ml_datasets).map((source) => ({ domain: "training_data" as const, source })),
  ];

  const rows: OverviewRow[] = [];
  for (const { domain, source } of sources) {
    const dr = status.sources.find((s) => s.domain === domain && s.source === source);
    const measured = rto.find((s) => s.domain === domain && s.source === source);
    let newest: OverviewRow["newest_point"] = null;
    let lastVerify: OverviewRow["last_verify"] = null;
    let rpo: number | null = dr?.rpo_minutes ?? null;
    let continuous: OverviewRow["continuous"] = null;
    if (domain === "storage") {
      const st = storage.find((r) => `${r.bucket}/${r.prefix}` === source);
      const snap = st ? await snapshots.latestSnapshot(st.bucket, st.prefix) : undefined;
      if (snap) newest = { id: snap.id, type: snap.parent_id ? "incremental" : "full", created_at: snap.created_at, age_minutes: minutesBetween(snap.created_at, now) };
      if (st && (st.versioning || st.replica)) {
        continuous = { kind: st.replica ? "replica" : "versioning", replica: st.replica, seconds_behind: st.replica_seconds_behind };
      }
      rpo ??= newest?.age_minutes ?? null;
    } else {
      // A database's continuous archive: how far behind its newest durable commit is (dr/status counts it in the RPO).
      const stream = domain === "database" ? await archive.freshestLiveStream(source) : undefined;
      const behind = stream ? rpoSeconds(stream, now) : null;
      if (behind !== null) continuous = { kind: "archive", replica: null, seconds_behind: Math.round(behind) };
      const recent: BackupRow[] = await catalog.listBackups({ domain, source, limit: RECENT });
      const point = recent.find((b) => b.status === "completed");
      if (point) newest = { id: point.id, type: point.type, created_at: point.created_at, age_minutes: minutesBetween(point.created_at, now) };
      const verified = recent.filter((b) => b.verified_at).sort((a, b) => (a.verified_at! < b.verified_at! ? 1 : -1))[0];
      if (verified) lastVerify = { backup_id: verified.id, at: verified.verified_at!, depth: verified.verify_depth, status: verified.verify_status };
      // The RPO in force counts verified points only (as GET /dr/status); with none verified, the newest point's age.
      if (rpo === null && domain !== "database") {
        const good = recent.find((b) => b.status === "completed" && b.verify_status === "passed");
        rpo = good ? minutesBetween(good.created_at, now) : null;
      }
    }
    const drill = dr?.last_drill
      ? { run_id: dr.last_drill.run_id, at: dr.last_drill.at, passed: dr.last_drill.passed, data_loss_minutes: dr.last_drill.data_loss_minutes }
      : null;
    const rpoNow = rpoState(rpo, target);
    const rtoView = {
      implied_minutes: measured?.implied_rto_minutes ?? null, target_minutes: config.rto_target_minutes,
      state: measured?.state ?? "unknown", restores_measured: measured?.restores_measured ?? 0,
    };

    const red: string[] = [];
    const amber: string[] = [];
    if (!newest && continuous) amber.push("no snapshot yet (continuous protection in force)");
    else if (!newest) red.push("no restore point");
    if (rpoNow === "breached") red.push(`RPO ${rpo} min is over twice the ${target} min target`);
    if (rpoNow === "at_risk") amber.push(`RPO ${rpo} min is over the ${target} min target`);
    if (newest && rpo === null) amber.push("no verified restore point");
    if (lastVerify?.status === "failed") red.push(`verify of ${lastVerify.backup_id} failed`);
    if (drill && !drill.passed) red.push(`last drill ${drill.run_id} failed`);
    if (newest && !drill) amber.push("never drilled");
    if (rtoView.state === "breached") red.push(`implied RTO ${rtoView.implied_minutes} min is over the ${rtoView.target_minutes} min target`);
    if (rtoView.state === "at_risk") amber.push(`implied RTO ${rtoView.implied_minutes} min is over half the target`);
    rows.push({
      domain, source, health: red.length ? "red" : amber.length ? "amber" : "green", reasons: [...red, ...amber],
      newest_point: newest, rpo_minutes: rpo, rpo_target_minutes: target, rpo_state: rpoNow,
      last_verify: lastVerify, last_drill: drill, rto: rtoView, continuous, next_run: nextRun(config, domain, now),
    });
  }
  rows.sort((a, b) =>
    HEALTH_ORDER.indexOf(a.health) - HEALTH_ORDER.indexOf(b.health)
    || DOMAINS.indexOf(a.domain) - DOMAINS.indexOf(b.domain)
    || a.source.localeCompare(b.source));
  const drill = config.dr_testing_enabled && config.backup_enabled ? nextCronRun(config.dr_test_schedule, now) : null;
  return {
    generated_at: now.toISOString(),
    rpo_target_minutes: target,
    rto_target_minutes: config.rto_target_minutes,
    last_drill: status.last_drill,
    next_drill_at: drill?.toISOString() ?? null,
    sources: rows,
  };
}
