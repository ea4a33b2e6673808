// calculate_recovery_time_objective and the RPO in force, measured:
//   rto: per domain and source, the restore durations of recent drills and
//        restores (last, p50, p95), their throughput, the size of the newest
//        restore point and the RTO that implies today, against RTO_TARGET_MINUTES:
//        ok, at_risk (over half the target) or breached.
//   status: per domain and source, the newest restorable point, the RPO in
//        force (age of the newest verified point, or continuous protection:
//        versioning/replication of a bucket, or a database's continuous
//        archive, whose newest durable commit is the RPO), and the data loss
//        the last drill measured, against RPO_TARGET_MINUTES.
import type { Catalog } from "../catalog/catalog.ts";
import { openStorageCatalog } from "../catalog/storage-catalog.ts";
import { openContinuousCatalog, rpoSeconds } from "../catalog/continuous-catalog.ts";
import type { BackupConfig } from "../config.ts";
import type { Env } from "../env.ts";
import type { KindContext } from "../context.ts";
import type { DomainResult } from "./protocol.ts";
import { storageStatus } from "../storage/status.ts";
import { openDrStore } from "./runs.ts";

const RECENT_RUNS = 20;
const RECENT_RESTORES = 50;

interface Sample { ms: number; bytes: number; at: string; via: string }

export type RtoState = "ok" | "at_risk" | "breached" | "unknown";

export function rtoState(impliedMinutes: number | null, targetMinutes: number): RtoState {
  if (impliedMinutes === null) return "unknown";
  if (impliedMinutes > targetMinutes) return "breached";
  return impliedMinutes > targetMinutes / 2 ? "at_risk" : "ok";
}

const percentile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

/** Restore samples per "domain source": drills' restore steps, then ordinary restore jobs. */
async function restoreSamples(env: Env, catalog: Catalog): Promise<Map<string, Sample[]>> {
  const out = new Map<string, Sample[]>();
  const add = (key: string, s: Sample) => (out.get(key) ?? out.set(key, []).get(key)!).push(s);
  for (const run of await openDrStore(env.CATALOG).listRuns({ limit: RECENT_RUNS })) {
    for (const d of (run.results ? JSON.parse(run.results) : []) as DomainResult[]) {
      if (d.passed && d.restore_ms > 0) add(`${d.domain} ${d.source}`, { ms: d.restore_ms, bytes: d.bytes, at: run.finished_at ?? run.started_at, via: `drill ${run.id}` });
    }
  }
  const restores = await openDrStore(env.CATALOG).recentRestores(RECENT_RESTORES);
  for (const j of restores) {
    const r = JSON.parse(j.result ?? "{}");
    const backup = j.backup_id ? await catalog.getBackup(j.backup_id) : undefined;
    if (!backup || !(r.duration_ms > 0)) continue;
    add(`${backup.domain} ${backup.source}`, { ms: r.duration_ms, bytes: r.bytes ?? r.artifact_bytes ?? backup.logical_bytes, at: j.finished_at ?? j.created_at, via: `restore ${j.id}` });
  }
  for (const list of out.values()) list.sort((a, b) => (a.at < b.at ? 1 : -1));
  return out;
}

/** Every configured source with the size of its newest restore point. */
async function sources(env: Env, catalog: Catalog, config: BackupConfig) {
  const list: { domain: string; source: string; newest: { id: string; created_at: string; bytes: number; verified: boolean } | null }[] = [];
  for (const database of Object.keys(config.databases)) {
    const b = await catalog.latestBackup(database, {});
    list.push({ domain: "database", source: database, newest: b ? { id: b.id, created_at: b.created_at, bytes: b.logical_bytes, verified: b.verify_status === "passed" } : null });
  }
  const storage = openStorageCatalog(env.CATALOG);
  for (const s of config.storage_backup_sources) {
    const snap = await storage.latestSnapshot(s.bucket, s.prefix);
    list.push({ domain: "storage", source: `${s.bucket}/${s.prefix}`, newest: snap ? { id: snap.id, created_at: snap.created_at, bytes: snap.bytes, verified: true } : null });
  }
  for (const server of Object.keys(config.ml_servers)) {
    const b = await catalog.latestDomainBackup("ml", server);
    if (b) list.push({ domain: "ml", source: server, newest: { id: b.id, created_at: b.created_at, bytes: b.logical_bytes, verified: b.verify_status === "passed" } });
  }
  return list;
}

export async function computeRto(ctx: KindContext) {
  const { env, catalog, config } = ctx;
  const samples = await restoreSamples(env, catalog);
  const target = config.rto_target_minutes;
  const out = [];
  for (const s of await sources(env, catalog, config)) {
    const list = samples.get(`${s.domain} ${s.source}`) ?? [];
    const ms = list.map((x) => x.ms).sort((a, b) => a - b);
    const rates = list.filter((x) => x.bytes > 0).map((x) => (x.bytes / x.ms) * 1000).sort((a, b) => a - b);
    // Pessimistic: the slower half of the measured throughputs.
    const throughput = rates.length ? percentile(rates, 0.25) : null;
    const implied = throughput && s.newest ? s.newest.bytes / throughput / 60 : list.length ? ms[ms.length - 1]! / 60_000 : null;
    out.push({
      domain: s.domain, source: s.source,
      restores_measured: list.length,
      last_seconds: list.length ? list[0]!.ms / 1000 : null,
      last_via: list[0]?.via ?? null,
      p50_seconds: ms.length ? percentile(ms, 0.5) / 1000 : null,
      p95_seconds: ms.length ? percentile(ms, 0.95) / 1000 : null,
      throughput_bytes_per_second: throughput === null ? null : Math.round(throughput),
      newest_point_bytes: s.newest?.bytes ?? null,
      implied_rto_minutes: implied === null ? null : round(implied),
      rto_target_minutes: target,
      state: rtoState(implied, target),
    });
  }
  return out;
}

export async function computeStatus(ctx: KindContext) {
  const { env, catalog, config, now } = ctx;
  const store = openDrStore(env.CATALOG);
  const lastDrill = await store.latestRun("drill");
  const lastResults = (lastDrill?.results ? JSON.parse(lastDrill.results) : []) as DomainResult[];
  const storageRows = await storageStatus(env, config, now);
  const continuousStore = openContinuousCatalog(env.CATALOG);
  const target = config.rpo_target_minutes;
  const out = [];
  for (const s of await sources(env, catalog, config)) {
    let verified = s.newest?.verified ? s.newest : null;
    if (s.domain === "database") {
      const v = await catalog.latestBackup(s.source, { verified: true });
      verified = v ? { id: v.id, created_at: v.created_at, bytes: v.logical_bytes, verified: true } : null;
    }
    const st = s.domain === "storage" ? storageRows.find((r) => `${r.bucket}/${r.prefix}` === s.source) : undefined;
    // A database under continuous archiving loses at most what is newer than its newest durable commit, at
    // 01:59 as at noon; without it (or before its base is recorded) the newest verified restore point counts.
    const archive = s.domain === "database" ? await continuousStore.freshestLiveStream(s.source) : undefined;
    const archiveAgeSeconds = archive ? rpoSeconds(archive, now) : null;
    const continuous = Boolean(st && (st.versioning || st.replica)) || archiveAgeSeconds !== null;
    const pointAge = verified ? Math.max(0, now.getTime() - Date.parse(verified.created_at)) / 60_000 : null;
    // Continuous protection: the replica's lag (0 with versioning alone) is the RPO in force; for a database
    // the archive's age, or the newest verified point's when that is younger (a stalled stream).
    const rpo = archiveAgeSeconds !== null ? Math.min(archiveAgeSeconds / 60, pointAge ?? Infinity)
      : continuous ? (st!.replica_seconds_behind ?? 0) / 60 : pointAge;
    const drilled = lastResults.find((d) => d.domain === s.domain && d.source === s.source);
    const loss = drilled?.details?.data_loss_seconds;
    out.push({
      domain: s.domain, source: s.source,
      newest_point: s.newest ? { id: s.newest.id, created_at: s.newest.created_at } : null,
      newest_verified_point: verified ? { id: verified.id, created_at: verified.created_at } : null,
      protection: continuous ? ("continuous" as const) : ("restore_points" as const),
      rpo_minutes: rpo === null ? null : round(rpo),
      rpo_target_minutes: target,
      rpo_met: rpo !== null && rpo <= target,
      last_drill: drilled ? {
        run_id: lastDrill!.id, at: lastDrill!.started_at, passed: drilled.passed,
        data_loss_minutes: typeof loss === "number" ? round(loss / 60) : null,
        data_loss_met: typeof loss === "number" ? loss <= target * 60 : null,
      } : null,
    });
  }
  return {
    last_drill: lastDrill ? { run_id: lastDrill.id, status: lastDrill.status, started_at: lastDrill.started_at, finished_at: lastDrill.finished_at, data_loss_seconds: lastDrill.data_loss_seconds } : null,
    sources: out,
  };
}

const round = (n: number) => Math.round(n * 10) / 10;
