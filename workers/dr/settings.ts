// Disaster recovery's view of the config: the DR settings of SETTINGS
// (workers/config.ts) with their lists and pairs taken apart. URLs, tokens
// and the escrow identity are secrets: they go to the runner in a dispatch or
// to a webhook, never into a response, the catalog or a log line.
import type { BackupConfig } from "../config.ts";
import { ConfigError } from "../config.ts";

const DOMAINS = ["database", "storage", "ml", "catalog"] as const;
export type DrDomain = (typeof DOMAINS)[number];

export interface DrSettings {
  restore_point: "latest" | "random";
  random_window_days: number;
  /** Server of the scratch databases (its path is ignored); undefined: each source's own server. */
  database_url?: string;
  storage_sample: number;
  scratch_bucket: string;
  domains: DrDomain[];
  mlflow?: { tracking_uri: string; token?: string };
  escrow_identity?: string;
  canary: boolean;
  webhooks: string[];
  deadman_url?: string;
  replication_lag_seconds: number;
  backup_grace_minutes: number;
}

const list = (v: string) => v.split(",").map((s) => s.trim()).filter(Boolean);

function url(value: string, variable: string, schemes: RegExp): string {
  try {
    if (schemes.test(new URL(value).protocol)) return value;
  } catch {
    // not a URL: said below, without echoing it (it may hold a password)
  }
  throw new ConfigError(`${variable}: not a valid ${schemes.source.replace(/[\\^$()]/g, "")} URL`);
}

export function drSettings(config: BackupConfig): DrSettings {
  const domains = list(config.dr_domains);
  const unknown = domains.find((d) => !(DOMAINS as readonly string[]).includes(d));
  if (unknown) throw new ConfigError(`DR_DOMAINS="${config.dr_domains}": unknown domain "${unknown}" (${DOMAINS.join(", ")})`);
  return {
    restore_point: config.dr_restore_point,
    random_window_days: config.dr_random_window_days,
    ...(config.dr_database_url ? { database_url: url(config.dr_database_url, "DR_DATABASE_URL", /^(postgres|postgresql):$/) } : {}),
    storage_sample: config.dr_storage_sample,
    scratch_bucket: config.dr_scratch_bucket,
    domains: domains as DrDomain[],
    ...(config.dr_mlflow_tracking_uri ? {
      mlflow: {
        tracking_uri: url(config.dr_mlflow_tracking_uri, "DR_MLFLOW_TRACKING_URI", /^(http|https):$/),
        ...(config.dr_mlflow_tracking_token ? { token: config.dr_mlflow_tracking_token } : {}),
      },
    } : {}),
    ...(config.age_escrow_identity ? { escrow_identity: config.age_escrow_identity } : {}),
    canary: config.dr_canary,
    webhooks: list(config.alert_webhook_urls).map((w) => url(w, "ALERT_WEBHOOK_URLS", /^(http|https):$/)),
    ...(config.alert_deadman_url ? { deadman_url: url(config.alert_deadman_url, "ALERT_DEADMAN_URL", /^(http|https):$/) } : {}),
    replication_lag_seconds: config.alert_replication_lag_seconds,
    backup_grace_minutes: config.alert_backup_grace_minutes,
  };
}

export const enabled = (s: DrSettings, d: DrDomain) => s.domains.includes(d);
