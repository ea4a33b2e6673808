// BackupConfig from ASTR-112: one typed, validated place for every setting.
// Defaults are the ticket's; the ticket's environment variables override them.
// A bad value throws ConfigError naming the variable, so a typo fails the first
// request or cron after deploy (and `npm run check-config`), not the 2 AM backup.
import { z } from "zod";
import { DatabaseName, MlName, TrainingDataset, type BackupType } from "./shared/protocol.ts";
import { BucketName } from "./shared/format.ts";

const CRON_FIELD = /^(\*|\d+(-\d+)?)(\/\d+)?(,(\*|\d+(-\d+)?)(\/\d+)?)*$/;
const Cron = z.string().refine((s) => {
  const fields = s.trim().split(/\s+/);
  return fields.length === 5 && fields.every((f) => CRON_FIELD.test(f));
}, "not a 5-field cron expression");

/** Bech32 "age1" + 58 characters: X25519 only, which is what manifests record and stock `age` decrypts. */
const AGE_X25519_RECIPIENT = /^age1[02-9ac-hj-np-z]{58}$/;

const Bool = z.enum(["true", "false", "1", "0"]).transform((v) => v === "true" || v === "1");
const Minutes = z.coerce.number().int().positive();
const Days = z.coerce.number().int().positive().max(36500);
/** A keep_* retention count; 0 turns the rule off. */
const KeepCount = z.coerce.number().int().nonnegative().max(100_000);

export const BackupConfig = z.object({
  backup_enabled: z.boolean(),
  backup_storage_bucket: z.string().min(1),
  // database
  database_backup_enabled: z.boolean(),
  database_backup_schedule: Cron,
  database_incremental_schedule: Cron,
  database_archive_schedule: Cron,
  database_retention_days: Days,
  /** Archives are kept this long; they are not subject to the keep_* rules (database/retention.ts). */
  database_archive_retention_days: Days,
  /** restic-style keep rules for full and incremental backups, beyond retention_days; 0 = off. */
  database_keep_last: KeepCount,
  database_keep_hourly: KeepCount,
  database_keep_daily: KeepCount,
  database_keep_weekly: KeepCount,
  database_keep_monthly: KeepCount,
  database_encryption_enabled: z.literal(true, "backups are always encrypted; set BACKUP_ENCRYPTION_KEY"),
  /** Configured databases: name -> name of the secret holding its URL. */
  databases: z.record(DatabaseName, z.string()),
  default_database: DatabaseName,
  /** age recipients (public keys) new backups are encrypted to. */
  encryption_recipients: z.array(z.string().regex(AGE_X25519_RECIPIENT, "not an age X25519 recipient (age1…, 62 characters)")).min(1),
  // storage (its jobs arrive with a later issue; the settings are read now), ml
  storage_backup_enabled: z.boolean(),
  storage_backup_schedule: Cron,
  storage_versioning_enabled: z.boolean(),
  storage_cross_region_replication: z.boolean(),
  /** R2 buckets this system protects: bucket name -> name of its Worker binding (STORAGE_BUCKETS). */
  storage_buckets: z.record(BucketName, z.string().regex(/^[A-Z][A-Z0-9_]*$/, "binding names are upper-case")),
  /** What the storage schedule snapshots: "bucket" or "bucket/prefix/" (STORAGE_BACKUP_SOURCES; default every bucket not a replica). */
  storage_backup_sources: z.array(z.object({ bucket: BucketName, prefix: z.string() })),
  /** Buckets under versioning from the start (STORAGE_VERSIONED_BUCKETS; default every bucket not a replica); more through the API. */
  storage_versioned_buckets: z.array(BucketName),
  /** Static replication pairs (STORAGE_REPLICATION "source=replica,…"); more can be switched on through the API. */
  storage_replication: z.record(BucketName, BucketName),
  /** Objects per snapshot/restore step (one Queue message); each new object costs about 4 R2 operations. */
  storage_page_size: z.coerce.number().int().min(1).max(1000),
  /** Objects larger than this move as multipart uploads of storage_part_size_bytes parts. */
  storage_multipart_threshold_bytes: z.coerce.number().int().min(5 * 1024 * 1024),
  storage_part_size_bytes: z.coerce.number().int().min(5 * 1024 * 1024).max(5 * 1024 * 1024 * 1024),
  /** Reconciliation of versioned and replicated buckets against their listings. */
  storage_reconcile_schedule: Cron,
  storage_retention_days: Days,
  /** A version superseded longer ago than this leaves the version store. */
  storage_version_retention_days: Days,
  /** The off-site copy of the backup bucket (only when OFFSITE_S3_* are set: docs/storage-ops.md). */
  offsite_schedule: Cron,
  ml_backup_enabled: z.boolean(),
  ml_backup_schedule: Cron,
  ml_artifact_retention_days: Days,
  ml_model_versioning: z.boolean(),
  /** Configured MLflow tracking servers: name -> names of the secrets holding its URI and (optional) token. */
  ml_servers: z.record(MlName, z.object({ uri_secret: z.string(), token_secret: z.string() })),
  default_ml_server: MlName,
  /** Training datasets (ML_DATASETS, JSON): id -> tables/queries of a configured database and/or R2 prefixes. */
  ml_datasets: z.record(MlName, TrainingDataset),
  // disaster recovery
  dr_testing_enabled: z.boolean(),
  dr_test_schedule: Cron,
  rto_target_minutes: Minutes,
  rpo_target_minutes: Minutes,
  /**
   * Verification queued after every backup, so the RPO counts verified
   * restore points (GET /backup/database/status). "quick" reads every chunk
   * back without a key; "off" leaves verification to explicit requests.
   */
  database_verify_after_backup: z.enum(["off", "quick", "full"]),
  /** Garbage collection: when it runs, and how young an unreferenced chunk must be to be spared. */
  repository_gc_schedule: Cron,
  gc_grace_minutes: z.number().int().nonnegative(),
  /** A running job that has not reported for this long is declared lost. */
  job_lease_seconds: z.number().int().positive(),
});
export type BackupConfig = z.infer<typeof BackupConfig>;

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Environment variable -> config field, with the parser for its text. */
const OVERRIDES: Record<string, [keyof BackupConfig, z.ZodType]> = {
  BACKUP_ENABLED: ["backup_enabled", Bool],
  BACKUP_STORAGE_BUCKET: ["backup_storage_bucket", z.string()],
  DATABASE_BACKUP_ENABLED: ["database_backup_enabled", Bool],
  DATABASE_BACKUP_SCHEDULE: ["database_backup_schedule", z.string()],
  DATABASE_INCREMENTAL_SCHEDULE: ["database_incremental_schedule", z.string()],
  DATABASE_ARCHIVE_SCHEDULE: ["database_archive_schedule", z.string()],
  DATABASE_RETENTION_DAYS: ["database_retention_days", z.string()],
  DATABASE_ARCHIVE_RETENTION_DAYS: ["database_archive_retention_days", z.string()],
  DATABASE_KEEP_LAST: ["database_keep_last", z.string()],
  DATABASE_KEEP_HOURLY: ["database_keep_hourly", z.string()],
  DATABASE_KEEP_DAILY: ["database_keep_daily", z.string()],
  DATABASE_KEEP_WEEKLY: ["database_keep_weekly", z.string()],
  DATABASE_KEEP_MONTHLY: ["database_keep_monthly", z.string()],
  STORAGE_BACKUP_ENABLED: ["storage_backup_enabled", Bool],
  STORAGE_BACKUP_SCHEDULE: ["storage_backup_schedule", z.string()],
  STORAGE_VERSIONING_ENABLED: ["storage_versioning_enabled", Bool],
  STORAGE_CROSS_REGION_REPLICATION: ["storage_cross_region_replication", Bool],
  STORAGE_PAGE_SIZE: ["storage_page_size", z.string()],
  STORAGE_MULTIPART_THRESHOLD_BYTES: ["storage_multipart_threshold_bytes", z.string()],
  STORAGE_PART_SIZE_BYTES: ["storage_part_size_bytes", z.string()],
  STORAGE_RECONCILE_SCHEDULE: ["storage_reconcile_schedule", z.string()],
  STORAGE_RETENTION_DAYS: ["storage_retention_days", z.string()],
  STORAGE_VERSION_RETENTION_DAYS: ["storage_version_retention_days", z.string()],
  OFFSITE_SCHEDULE: ["offsite_schedule", z.string()],
  ML_BACKUP_ENABLED: ["ml_backup_enabled", Bool],
  ML_BACKUP_SCHEDULE: ["ml_backup_schedule", z.string()],
  ML_ARTIFACT_RETENTION_DAYS: ["ml_artifact_retention_days", z.string()],
  ML_MODEL_VERSIONING: ["ml_model_versioning", Bool],
  DR_TESTING_ENABLED: ["dr_testing_enabled", Bool],
  DR_TEST_SCHEDULE: ["dr_test_schedule", z.string()],
  RTO_TARGET_MINUTES: ["rto_target_minutes", z.string()],
  RPO_TARGET_MINUTES: ["rpo_target_minutes", z.string()],
  JOB_LEASE_SECONDS: ["job_lease_seconds", z.coerce.number()],
  REPOSITORY_GC_SCHEDULE: ["repository_gc_schedule", z.string()],
  DATABASE_VERIFY_AFTER_BACKUP: ["database_verify_after_backup", z.string()],
  GC_GRACE_MINUTES: ["gc_grace_minutes", z.coerce.number()],
};

export const DEFAULTS = {
  backup_enabled: true,
  backup_storage_bucket: "astrid-backups",
  database_backup_enabled: true,
  database_backup_schedule: "0 2 * * *",
  database_incremental_schedule: "0 9-17 * * 1-5",
  database_archive_schedule: "0 5 * * 0",
  database_retention_days: 30,
  database_archive_retention_days: 365,
  // All keep_* rules off: retention is the seed's plain 30 days unless configured.
  database_keep_last: 0,
  database_keep_hourly: 0,
  database_keep_daily: 0,
  database_keep_weekly: 0,
  database_keep_monthly: 0,
  database_encryption_enabled: true,
  storage_backup_enabled: true,
  storage_backup_schedule: "0 3 * * *",
  storage_versioning_enabled: true,
  storage_cross_region_replication: true,
  storage_page_size: 200,
  storage_multipart_threshold_bytes: 256 * 1024 * 1024,
  storage_part_size_bytes: 64 * 1024 * 1024,
  storage_reconcile_schedule: "15 * * * *",
  storage_retention_days: 30,
  storage_version_retention_days: 90,
  offsite_schedule: "0 5 * * *",
  ml_backup_enabled: true,
  ml_backup_schedule: "0 4 * * *",
  ml_artifact_retention_days: 90,
  ml_model_versioning: true,
  dr_testing_enabled: true,
  dr_test_schedule: "0 0 * * 0",
  rto_target_minutes: 60,
  rpo_target_minutes: 15,
  job_lease_seconds: 120,
  repository_gc_schedule: "0 6 * * 0",
  database_verify_after_backup: "quick",
  gc_grace_minutes: 24 * 60,
} as const;

export type ConfigEnv = Record<string, unknown>;

/**
 * Builds the config from environment variables. Databases: BACKUP_DATABASES is
 * a comma list of names (default "astrid"); each name's URL is in the secret
 * DATABASE_URL_<NAME>, and the first name may use the ticket's DATABASE_URL.
 */
export function loadConfig(env: ConfigEnv): BackupConfig {
  const raw: Record<string, unknown> = { ...DEFAULTS };
  for (const [variable, [field, parser]] of Object.entries(OVERRIDES)) {
    const text = env[variable];
    if (typeof text !== "string" || text === "") continue;
    const parsed = parser.safeParse(text);
    if (!parsed.success) throw new ConfigError(`${variable}=${JSON.stringify(text)}: ${parsed.error.issues[0]?.message}`);
    raw[field] = parsed.data;
  }
  const names = String(env.BACKUP_DATABASES ?? "astrid").split(",").map((s) => s.trim()).filter(Boolean);
  raw.databases = Object.fromEntries(names.map((n) => [n, databaseSecretName(n)]));
  raw.default_database = names[0];
  raw.database_encryption_enabled = env.DATABASE_ENCRYPTION_ENABLED === "false" ? false : true;
  raw.encryption_recipients = String(env.BACKUP_ENCRYPTION_KEY ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  Object.assign(raw, storageSettings(env));
  const servers = String(env.ML_SERVERS ?? "mlflow").split(",").map((s) => s.trim()).filter(Boolean);
  raw.ml_servers = Object.fromEntries(servers.map((n) => [n, { uri_secret: mlflowSecretName(n, "URI"), token_secret: mlflowSecretName(n, "TOKEN") }]));
  raw.default_ml_server = servers[0];
  raw.ml_datasets = parseDatasets(env.ML_DATASETS);
  const result = BackupConfig.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    if (issue.path[0] === "ml_datasets") throw new ConfigError(`ML_DATASETS, config ${issue.path.join(".")}: ${issue.message}`);
    const where = `config ${issue.path.join(".") || "(root)"}`;
    throw new ConfigError(`${variableFor(env, String(issue.path[0] ?? ""))}${where}: ${issue.message}`);
  }
  for (const [id, d] of Object.entries(result.data.ml_datasets)) {
    if (d.database && !(d.database in result.data.databases)) {
      throw new ConfigError(`ML_DATASETS, config ml_datasets.${id}.database: "${d.database}" is not a configured database (BACKUP_DATABASES)`);
    }
  }
  return result.data;
}

/** Fields built from variables outside OVERRIDES; their values are not echoed (a key may be pasted by mistake). */
const DERIVED: Record<string, string> = {
  databases: "BACKUP_DATABASES",
  default_database: "BACKUP_DATABASES",
  database_encryption_enabled: "DATABASE_ENCRYPTION_ENABLED",
  encryption_recipients: "BACKUP_ENCRYPTION_KEY",
  storage_buckets: "STORAGE_BUCKETS",
  storage_backup_sources: "STORAGE_BACKUP_SOURCES",
  storage_replication: "STORAGE_REPLICATION",
  storage_versioned_buckets: "STORAGE_VERSIONED_BUCKETS",
  ml_servers: "ML_SERVERS",
  default_ml_server: "ML_SERVERS",
};

/** "a=b,c=d" -> {a: "b", c: "d"}; an item without "=" throws ConfigError naming the variable. */
function pairs(env: ConfigEnv, variable: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of String(env[variable] ?? "").split(",").map((s) => s.trim()).filter(Boolean)) {
    const [name, value, extra] = item.split("=").map((s) => s.trim());
    if (!name || !value || extra !== undefined) throw new ConfigError(`${variable}: "${item}" is not name=value`);
    out[name] = value;
  }
  return out;
}

/** Storage settings built from STORAGE_BUCKETS, STORAGE_REPLICATION and STORAGE_BACKUP_SOURCES. */
function storageSettings(env: ConfigEnv) {
  const storage_buckets = pairs(env, "STORAGE_BUCKETS");
  const storage_replication = pairs(env, "STORAGE_REPLICATION");
  for (const [source, replica] of Object.entries(storage_replication)) {
    for (const b of [source, replica]) {
      if (!storage_buckets[b]) throw new ConfigError(`STORAGE_REPLICATION: bucket "${b}" is not in STORAGE_BUCKETS`);
    }
  }
  const replicas = new Set(Object.values(storage_replication));
  const listed = String(env.STORAGE_BACKUP_SOURCES ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  const sources = (listed.length ? listed : Object.keys(storage_buckets).filter((b) => !replicas.has(b))).map((s) => {
    const slash = s.indexOf("/");
    const source = slash < 0 ? { bucket: s, prefix: "" } : { bucket: s.slice(0, slash), prefix: s.slice(slash + 1) };
    if (!storage_buckets[source.bucket]) throw new ConfigError(`STORAGE_BACKUP_SOURCES: bucket "${source.bucket}" is not in STORAGE_BUCKETS`);
    return source;
  });
  const versionedListed = String(env.STORAGE_VERSIONED_BUCKETS ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  const storage_versioned_buckets = versionedListed.length ? versionedListed : Object.keys(storage_buckets).filter((b) => !replicas.has(b));
  for (const b of storage_versioned_buckets) {
    if (!storage_buckets[b]) throw new ConfigError(`STORAGE_VERSIONED_BUCKETS: bucket "${b}" is not in STORAGE_BUCKETS`);
  }
  return { storage_buckets, storage_replication, storage_backup_sources: sources, storage_versioned_buckets };
}

function parseDatasets(text: unknown): unknown {
  if (typeof text !== "string" || text.trim() === "") return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new ConfigError("ML_DATASETS: not JSON (an object of dataset id -> {database, tables, queries, r2_prefixes})");
  }
}

export function mlflowSecretName(server: string, what: "URI" | "TOKEN"): string {
  return `MLFLOW_TRACKING_${what}_${server.toUpperCase()}`;
}

/** A configured MLflow server's URI and token, from its secrets (or MLFLOW_TRACKING_URI/_TOKEN for the default server). */
export function mlflowAccess(config: BackupConfig, env: ConfigEnv, name: string): { tracking_uri: string; token?: string } | undefined {
  const server = config.ml_servers[name];
  if (!server) return undefined;
  const pick = (secret: string, fallback: string) => {
    const value = env[secret] ?? (name === config.default_ml_server ? env[fallback] : undefined);
    return typeof value === "string" && value !== "" ? value : undefined;
  };
  const uri = pick(server.uri_secret, "MLFLOW_TRACKING_URI");
  const token = pick(server.token_secret, "MLFLOW_TRACKING_TOKEN");
  return uri ? { tracking_uri: uri, ...(token ? { token } : {}) } : undefined;
}

/** "VARIABLE=value, " for the variable that set a failing field, so the error names what to fix. */
function variableFor(env: ConfigEnv, field: string): string {
  const override = Object.entries(OVERRIDES).find(([v, [f]]) => f === field && typeof env[v] === "string" && env[v] !== "");
  if (override) return `${override[0]}=${JSON.stringify(env[override[0]])}, `;
  return DERIVED[field] ? `${DERIVED[field]}, ` : "";
}

export function databaseSecretName(name: string): string {
  return `DATABASE_URL_${name.toUpperCase()}`;
}

/** The URL of a configured database, from its secret (or DATABASE_URL for the default). */
export function databaseUrl(config: BackupConfig, env: ConfigEnv, name: string): string | undefined {
  const secret = config.databases[name];
  if (!secret) return undefined;
  const value = env[secret] ?? (name === config.default_database ? env.DATABASE_URL : undefined);
  return typeof value === "string" && value !== "" ? value : undefined;
}

/** What a cron expression asks for, according to the config. */
export type ScheduledWork =
  | { kind: "database.backup"; type: BackupType }
  | { kind: "repository.gc" }
  | { kind: "storage.snapshot" }
  | { kind: "storage.reconcile" }
  | { kind: "storage.gc" }
  | { kind: "storage.offsite" }
  | { kind: "ml.backup" };

export function workForCron(config: BackupConfig, cron: string): ScheduledWork[] {
  if (!config.backup_enabled) return [];
  const work: ScheduledWork[] = [];
  if (config.database_backup_enabled) {
    const byType: [string, BackupType][] = [
      [config.database_backup_schedule, "full"],
      [config.database_incremental_schedule, "incremental"],
      [config.database_archive_schedule, "archive"],
    ];
    for (const [schedule, type] of byType) if (schedule === cron) work.push({ kind: "database.backup", type });
  }
  if (config.ml_backup_enabled && config.ml_backup_schedule === cron) work.push({ kind: "ml.backup" });
  if (config.repository_gc_schedule === cron) work.push({ kind: "repository.gc" }, { kind: "storage.gc" });
  if (config.storage_backup_enabled && config.storage_backup_schedule === cron) work.push({ kind: "storage.snapshot" });
  if (config.storage_reconcile_schedule === cron) work.push({ kind: "storage.reconcile" });
  if (config.offsite_schedule === cron) work.push({ kind: "storage.offsite" });
  return work;
}

/** Every schedule the config uses: wrangler.toml must list each as a cron trigger. */
export function configuredSchedules(config: BackupConfig): string[] {
  return [
    config.database_backup_schedule, config.database_incremental_schedule, config.database_archive_schedule, config.ml_backup_schedule,
    config.repository_gc_schedule, config.storage_backup_schedule, config.storage_reconcile_schedule, config.offsite_schedule,
    ...(config.dr_testing_enabled ? [config.dr_test_schedule] : []),
  ];
}
