// Settings of disaster recovery (drills, alerts), read from the Worker's env
// next to BackupConfig's dr_testing_enabled / dr_test_schedule /
// rto_target_minutes / rpo_target_minutes. URLs and tokens here are secrets:
// they go to the runner in a dispatch or to a webhook, never into a response,
// the catalog or a log line.
import { z } from "zod";
import type { Env } from "../env.ts";
import { ConfigError } from "../config.ts";

const Bool = z.enum(["true", "false", "1", "0"]).transform((v) => v === "true" || v === "1");
const DOMAINS = ["database", "storage", "ml", "catalog"] as const;
export type DrDomain = (typeof DOMAINS)[number];

const DrSettings = z.object({
  restore_point: z.enum(["latest", "random"]).default("latest"),
  random_window_days: z.coerce.number().int().positive().max(3650).default(7),
  /** Server of the scratch databases (its path is ignored); default: each source's own server. */
  database_url: z.string().regex(/^postgres(ql)?:\/\//, "not a postgres:// URL").optional(),
  storage_sample: z.coerce.number().int().positive().max(100_000).default(100),
  mlflow: z.object({ tracking_uri: z.url(), token: z.string().optional() }).optional(),
  /** Binding name of the scratch bucket; default the backup bucket, under dr-scratch/. */
  scratch_bucket: z.string().default("BACKUPS"),
  domains: z.array(z.enum(DOMAINS)).default([...DOMAINS]),
  canary: Bool.default(false),
  webhooks: z.array(z.url()).default([]),
  deadman_url: z.url().optional(),
  replication_lag_seconds: z.coerce.number().int().positive().default(300),
  /** Grace beyond a schedule's period before "no successful backup" fires. */
  backup_grace_minutes: z.coerce.number().int().nonnegative().default(60),
});
export type DrSettings = z.infer<typeof DrSettings>;

const VARIABLES: Record<string, keyof DrSettings> = {
  DR_RESTORE_POINT: "restore_point",
  DR_RANDOM_WINDOW_DAYS: "random_window_days",
  DR_DATABASE_URL: "database_url",
  DR_STORAGE_SAMPLE: "storage_sample",
  DR_SCRATCH_BUCKET: "scratch_bucket",
  DR_CANARY: "canary",
  ALERT_DEADMAN_URL: "deadman_url",
  ALERT_REPLICATION_LAG_SECONDS: "replication_lag_seconds",
  ALERT_BACKUP_GRACE_MINUTES: "backup_grace_minutes",
};
const SECRET = new Set(["DR_DATABASE_URL", "ALERT_DEADMAN_URL"]);

const list = (v: unknown) => String(v ?? "").split(",").map((s) => s.trim()).filter(Boolean);

export function drSettings(env: Env | Record<string, unknown>): DrSettings {
  const raw: Record<string, unknown> = {};
  for (const [variable, field] of Object.entries(VARIABLES)) {
    const v = env[variable];
    if (typeof v === "string" && v.trim() !== "") raw[field] = v.trim();
  }
  if (list(env.DR_DOMAINS).length) raw.domains = list(env.DR_DOMAINS);
  if (list(env.ALERT_WEBHOOK_URLS).length) raw.webhooks = list(env.ALERT_WEBHOOK_URLS);
  if (typeof env.DR_MLFLOW_TRACKING_URI === "string" && env.DR_MLFLOW_TRACKING_URI) {
    raw.mlflow = { tracking_uri: env.DR_MLFLOW_TRACKING_URI, ...(typeof env.DR_MLFLOW_TRACKING_TOKEN === "string" && env.DR_MLFLOW_TRACKING_TOKEN ? { token: env.DR_MLFLOW_TRACKING_TOKEN } : {}) };
  }
  const parsed = DrSettings.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = String(issue.path[0] ?? "");
    const variable = Object.entries(VARIABLES).find(([, f]) => f === field)?.[0]
      ?? ({ domains: "DR_DOMAINS", webhooks: "ALERT_WEBHOOK_URLS", mlflow: "DR_MLFLOW_TRACKING_URI" } as Record<string, string>)[field] ?? field;
    // Secret values are never echoed: a password may be in them.
    const shown = SECRET.has(variable) || variable === "ALERT_WEBHOOK_URLS" || variable === "DR_MLFLOW_TRACKING_URI" ? "" : `=${JSON.stringify(env[variable])}`;
    throw new ConfigError(`${variable}${shown}: ${issue.message}`);
  }
  return parsed.data;
}

export const enabled = (s: DrSettings, d: DrDomain) => s.domains.includes(d);
