// Replication and versioning status: lag measured from the replication log
// (event time -> applied), drift from the last reconciliation. Both feed the
// storage RPO: data written to the source is only as safe as the replica is current.
import type { BackupConfig } from "../config.ts";
import type { Env } from "../env.ts";
import { openStorageCatalog } from "../catalog/storage-catalog.ts";
import { protectionOf } from "./buckets.ts";

const WINDOW_MS = 60 * 60 * 1000;

export async function replicationStatus(env: Env, config: BackupConfig, now: Date) {
  const storage = openStorageCatalog(env.CATALOG);
  const rows = await storage.protections();
  const names = new Set([...rows.map((r) => r.bucket), ...Object.keys(config.storage_replication), ...config.storage_versioned_buckets]);
  const out = [];
  for (const bucket of [...names].sort()) {
    const protection = await protectionOf(config, storage, bucket);
    const row = rows.find((r) => r.bucket === bucket);
    const lags = protection.replica ? await storage.replicationLags(bucket, new Date(now.getTime() - WINDOW_MS)) : [];
    const pick = (q: number) => (lags.length ? lags[Math.min(lags.length - 1, Math.floor(q * lags.length))]!.lag_ms / 1000 : null);
    const lastApplied = lags.reduce<string | null>((m, l) => (m === null || l.applied_at > m ? l.applied_at : m), null);
    const drift = row?.last_drift ?? null;
    out.push({
      bucket,
      versioning: protection.versioning,
      replica: protection.replica ?? null,
      lag_seconds: { p50: pick(0.5), p99: pick(0.99), max: pick(1), changes_last_hour: lags.length },
      last_applied_at: lastApplied,
      drift_objects: drift,
      last_reconciled_at: row?.last_reconciled_at ?? null,
      // The worst lag seen in the last hour; drift means notifications were missed, which only reconciliation repairs.
      seconds_behind: pick(1) ?? 0,
      rpo_target_seconds: config.rpo_target_minutes * 60,
    });
  }
  return out;
}

/**
 * Per configured source: how old its newest snapshot is, and whether
 * versioning or replication protects it continuously. The storage RPO is met
 * when either the snapshot is young enough, or continuous protection is on
 * and current (replica within the target, no drift found).
 */
export async function storageStatus(env: Env, config: BackupConfig, now: Date) {
  const storage = openStorageCatalog(env.CATALOG);
  const replication = await replicationStatus(env, config, now);
  const target = config.rpo_target_minutes;
  const out = [];
  for (const source of config.storage_backup_sources) {
    const latest = await storage.latestSnapshot(source.bucket, source.prefix);
    const ageMinutes = latest ? Math.round((now.getTime() - Date.parse(latest.created_at)) / 60_000) : null;
    const r = replication.find((x) => x.bucket === source.bucket);
    const continuous = Boolean(r && (r.versioning || r.replica));
    const current = continuous && (r!.replica === null || r!.seconds_behind <= target * 60) && !r!.drift_objects;
    out.push({
      bucket: source.bucket, prefix: source.prefix,
      latest_snapshot: latest ? { id: latest.id, created_at: latest.created_at, objects: latest.objects, bytes: latest.bytes } : null,
      snapshot_age_minutes: ageMinutes,
      versioning: r?.versioning ?? false, replica: r?.replica ?? null, replica_seconds_behind: r?.replica ? r.seconds_behind : null,
      rpo_target_minutes: target,
      rpo_met: (ageMinutes !== null && ageMinutes <= target) || current,
    });
  }
  return out;
}
