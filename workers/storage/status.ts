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
