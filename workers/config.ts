// BackupConfig from ASTR-112: one typed, validated place for every setting.
// SETTINGS is the one table of the plain settings: for each, its environment
// variable, default (the ticket's), parser and doc line. The BackupConfig
// type, the environment overrides and `npm run check-config`'s listing all
// come from it. Settings built from several variables (databases, buckets,
// MLflow servers, datasets, recipients) are derived below it. A bad value
// throws ConfigError naming the variable, so a typo fails the first request
// or cron after deploy (and `npm run check-config`), not the 2 AM backup.
// The Worker reads the environment only through loadConfig, once per
// request, Queue message or cron run.
import { z } from "zod";
import { DatabaseName, MlName, TrainingDataset } from "./shared/protocol.ts";
import { BucketName } from "./shared/format.ts";
import { AppError } from "./shared/errors.ts";

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

/** A setting that does not parse: names the variable, so a typo fails the first request or cron after deploy. */
export class ConfigError extends AppError {
  override name = "ConfigError";
  constructor(message: string) {
    super("config_invalid", message, 500);
  }
}

/** One plain setting: its environment variable, default, parser (of the variable's text) and doc line. */
interface Setting<T> {
  env: string;
  default: T;
  parse: z.ZodType<T, string>;
  doc: string;
  /** A credential: check-config says whether it is set, never what it is. */
  secret?: boolean;
}

const setting = <T>(env: string, value: T, parse: z.ZodType<T, any>, doc: string, secret = false): Setting<T> =>
  ({ env, default: value, parse: parse as z.ZodType<T, string>, doc, ...(secret ? { secret } : {}) });

const Text = z.string();
const Count = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

export const SETTINGS = {
  backup_enabled: setting("BACKUP_ENABLED", true, Bool, "master switch: false turns every schedule off"),
  backup_storage_bucket: setting("BACKUP_STORAGE_BUCKET", "astrid-backups", Text.min(1), "the R2 bucket of the backup repository"),
  // database
  database_backup_enabled: setting("DATABASE_BACKUP_ENABLED", true, Bool, "scheduled database backups"),
  database_backup_schedule: setting("DATABASE_BACKUP_SCHEDULE", "0 2 * * *", Cron, "daily full backup; retention runs with it"),
  database_incremental_schedule: setting("DATABASE_INCREMENTAL_SCHEDULE", "0 9-17 * * 1-5", Cron, "incremental backups"),
  database_archive_schedule: setting("DATABASE_ARCHIVE_SCHEDULE", "0 5 * * 0", Cron, "self-contained archive backups"),
  database_retention_days: setting("DATABASE_RETENTION_DAYS", 30, Days, "full and incremental backups are kept this long"),
  database_archive_retention_days: setting("DATABASE_ARCHIVE_RETENTION_DAYS", 365, Days, "archives are kept this long; the keep_* rules do not apply to them"),
  // All keep_* rules off: retention is the seed's plain 30 days unless configured.
  database_keep_last: setting("DATABASE_KEEP_LAST", 0, KeepCount, "restic-style keep rule (0 = off)"),
  database_keep_hourly: setting("DATABASE_KEEP_HOURLY", 0, KeepCount, "restic-style keep rule (0 = off)"),
  database_keep_daily: setting("DATABASE_KEEP_DAILY", 0, KeepCount, "restic-style keep rule (0 = off)"),
  database_keep_weekly: setting("DATABASE_KEEP_WEEKLY", 0, KeepCount, "restic-style keep rule (0 = off)"),
  database_keep_monthly: setting("DATABASE_KEEP_MONTHLY", 0, KeepCount, "restic-style keep rule (0 = off)"),
  /**
   * Verification queued after every backup, so the RPO counts verified
   * restore points (GET /backup/database/status). "quick" reads every chunk
   * back without a key; "off" leaves verification to explicit requests.
   */
  database_verify_after_backup: setting("DATABASE_VERIFY_AFTER_BACKUP", "quick" as "off" | "quick" | "full", z.enum(["off", "quick", "full"]), "verification queued after every backup (off, quick, full)"),
  // storage
  storage_backup_enabled: setting("STORAGE_BACKUP_ENABLED", true, Bool, "scheduled R2 snapshots"),
  storage_backup_schedule: setting("STORAGE_BACKUP_SCHEDULE", "0 3 * * *", Cron, "daily R2 snapshots; storage retention runs with them"),
  storage_versioning_enabled: setting("STORAGE_VERSIONING_ENABLED", true, Bool, "version store from R2 event notifications"),
  storage_cross_region_replication: setting("STORAGE_CROSS_REGION_REPLICATION", true, Bool, "replicas kept by events and reconciliation"),
  storage_page_size: setting("STORAGE_PAGE_SIZE", 200, Count(1, 1000), "objects per snapshot/restore step; each new object costs about 4 R2 operations"),
  storage_multipart_threshold_bytes: setting("STORAGE_MULTIPART_THRESHOLD_BYTES", 256 * 1024 * 1024, Count(5 * 1024 * 1024, Number.MAX_SAFE_INTEGER), "objects larger than this move as multipart uploads"),
  storage_part_size_bytes: setting("STORAGE_PART_SIZE_BYTES", 64 * 1024 * 1024, Count(5 * 1024 * 1024, 5 * 1024 * 1024 * 1024), "multipart part size"),
  storage_reconcile_schedule: setting("STORAGE_RECONCILE_SCHEDULE", "15 * * * *", Cron, "reconciliation of versioned and replicated buckets against their listings"),
  storage_retention_days: setting("STORAGE_RETENTION_DAYS", 30, Days, "snapshots are kept this long (never the newest per source)"),
  storage_version_retention_days: setting("STORAGE_VERSION_RETENTION_DAYS", 90, Days, "a version superseded longer ago leaves the version store"),
  offsite_schedule: setting("OFFSITE_SCHEDULE", "0 5 * * *", Cron, "the off-site copy of the backup bucket (only when OFFSITE_S3_ENDPOINT is set)"),
  offsite_s3_endpoint: setting("OFFSITE_S3_ENDPOINT", "", Text, "the off-site S3-compatible endpoint (docs/storage-ops.md)"),
  offsite_s3_bucket: setting("OFFSITE_S3_BUCKET", "", Text, "the off-site bucket"),
  offsite_s3_region: setting("OFFSITE_S3_REGION", "us-east-1", Text.min(1), "the off-site region"),
  offsite_s3_prefix: setting("OFFSITE_S3_PREFIX", "", Text, "a key prefix inside the off-site bucket"),
  offsite_access_key_id: setting("OFFSITE_ACCESS_KEY_ID", "", Text, "off-site credentials", true),
  offsite_secret_access_key: setting("OFFSITE_SECRET_ACCESS_KEY", "", Text, "off-site credentials", true),
  r2_s3_endpoint: setting("R2_S3_ENDPOINT", "", Text, "R2's S3 API endpoint (lifecycle rules)"),
  r2_access_key_id: setting("R2_ACCESS_KEY_ID", "", Text, "R2 S3 API credentials", true),
  r2_secret_access_key: setting("R2_SECRET_ACCESS_KEY", "", Text, "R2 S3 API credentials", true),
  r2_jurisdiction: setting("R2_JURISDICTION", "", Text, "the R2 jurisdiction of the buckets, if any (e.g. eu)"),
  cloudflare_account_id: setting("CLOUDFLARE_ACCOUNT_ID", "", Text, "the Cloudflare account (Bucket Locks)"),
  cloudflare_api_token: setting("CLOUDFLARE_API_TOKEN", "", Text, "Cloudflare account API token (Bucket Locks)", true),
  // ml
  ml_backup_enabled: setting("ML_BACKUP_ENABLED", true, Bool, "scheduled MLflow and training-data backups"),
  ml_backup_schedule: setting("ML_BACKUP_SCHEDULE", "0 4 * * *", Cron, "daily MLflow and training-data backups; ML retention runs with them"),
  ml_artifact_retention_days: setting("ML_ARTIFACT_RETENTION_DAYS", 90, Days, "ML backups and training-data snapshots are kept this long"),
  ml_model_versioning: setting("ML_MODEL_VERSIONING", true, Bool, "scheduled ML backups include the model registry"),
  // disaster recovery
  dr_testing_enabled: setting("DR_TESTING_ENABLED", true, Bool, "weekly recovery drills"),
  dr_test_schedule: setting("DR_TEST_SCHEDULE", "0 0 * * 0", Cron, "recovery drills"),
  rto_target_minutes: setting("RTO_TARGET_MINUTES", 60, Minutes, "recovery time objective"),
  rpo_target_minutes: setting("RPO_TARGET_MINUTES", 15, Minutes, "recovery point objective"),
  // disaster recovery: drills, canaries, alerts (workers/dr, docs/dr.md)
  dr_watch_schedule: setting("DR_WATCH_SCHEDULE", "*/10 * * * *", Cron, "alert evaluation, lost drills, canaries"),
  dr_domains: setting("DR_DOMAINS", "database,storage,ml,catalog", Text, "what a drill proves (comma list)"),
  dr_restore_point: setting("DR_RESTORE_POINT", "latest" as "latest" | "random", z.enum(["latest", "random"]), "a drill's database restore point: newest verified, or random within the window"),
  dr_random_window_days: setting("DR_RANDOM_WINDOW_DAYS", 7, Days, "window of DR_RESTORE_POINT=random"),
  dr_database_url: setting("DR_DATABASE_URL", "", Text, "server of the drills' scratch databases (default: each source's server)", true),
  dr_storage_sample: setting("DR_STORAGE_SAMPLE", 100, Count(1, 100_000), "objects a drill restores per storage source"),
  dr_scratch_bucket: setting("DR_SCRATCH_BUCKET", "BACKUPS", Text.min(1), "binding or bucket name for drills' scratch prefixes"),
  dr_mlflow_tracking_uri: setting("DR_MLFLOW_TRACKING_URI", "", Text, "the scratch MLflow server drills restore into", true),
  dr_mlflow_tracking_token: setting("DR_MLFLOW_TRACKING_TOKEN", "", Text, "its token", true),
  age_escrow_identity: setting("AGE_ESCROW_IDENTITY", "", Text, "escrow age identity, only for the key_holder_unavailable rehearsal", true),
  dr_canary: setting("DR_CANARY", false, Bool, "canary rows and objects: drills measure the data really lost"),
  alert_webhook_urls: setting("ALERT_WEBHOOK_URLS", "", Text, "alert webhooks (comma list; Slack for hooks.slack.com or #slack)", true),
  alert_deadman_url: setting("ALERT_DEADMAN_URL", "", Text, "dead-man's-switch ping after successful scheduled runs", true),
  alert_replication_lag_seconds: setting("ALERT_REPLICATION_LAG_SECONDS", 300, Count(1, 86_400 * 30), "replication lag that alerts"),
  alert_backup_grace_minutes: setting("ALERT_BACKUP_GRACE_MINUTES", 60, Count(0, 60 * 24 * 30), "grace beyond a day before \"no successful backup\" alerts"),
  // repository and jobs
  repository_gc_schedule: setting("REPOSITORY_GC_SCHEDULE", "0 6 * * 0", Cron, "garbage collection of unreferenced packs and blobs"),
  gc_grace_minutes: setting("GC_GRACE_MINUTES", 24 * 60, Count(0, 60 * 24 * 365), "an unreferenced object younger than this is spared by GC"),
  job_lease_seconds: setting("JOB_LEASE_SECONDS", 120, Count(1, 24 * 3600), "a running job silent this long is declared lost"),
  cf_access_team_domain: setting("CF_ACCESS_TEAM_DOMAIN", "", Text, "Cloudflare Access team domain (<team>.cloudflareaccess.com): assertions are verified when it and CF_ACCESS_AUD are set"),
  cf_access_aud: setting("CF_ACCESS_AUD", "", Text, "the Access application's audience tag"),
  restore_target_hosts: setting("RESTORE_TARGET_HOSTS", "", Text, "restore targets allowed (comma list; .example.org for a domain); empty: any but link-local and metadata addresses"),
  restore_target_refuse_loopback: setting("RESTORE_TARGET_REFUSE_LOOPBACK", false, Bool, "refuse restore targets (given as URLs) on loopback addresses too; true in production, where loopback is the runner's own container"),
  runner_max_jobs: setting("RUNNER_MAX_JOBS", 4, Count(1, 64), "runner jobs (dumps, restores, MLflow exports) running at once; more wait in the queue"),
  // continuous archiving (workers/continuous, docs/continuous.md)
  database_continuous: setting("DATABASE_CONTINUOUS", "", Text, "databases under continuous archiving and point-in-time recovery (comma list of BACKUP_DATABASES names)"),
  continuous_segment_seconds: setting("CONTINUOUS_SEGMENT_SECONDS", 30, Count(1, 3600), "a change-stream segment is cut at least this often"),
  continuous_segment_max_mb: setting("CONTINUOUS_SEGMENT_MAX_MB", 16, Count(1, 1024), "a segment is cut once it holds this many MiB of SQL"),
  continuous_heartbeat_seconds: setting("CONTINUOUS_HEARTBEAT_SECONDS", 10, Count(1, 600), "stream heartbeat: slot health, covered time, idle-slot message"),
  continuous_watch_schedule: setting("CONTINUOUS_WATCH_SCHEDULE", "* * * * *", Cron, "(re)starts streams whose job is gone, evaluates slot and RPO alerts"),
  continuous_rebase_hours: setting("CONTINUOUS_REBASE_HOURS", 24, z.coerce.number().min(0).max(24 * 366), "a stream whose base is this old is replaced by a new one (own slot and base), overlapping it: bounds a restore's replay (fractions allowed; 0 = never)"),
  continuous_capture_ddl: setting("CONTINUOUS_CAPTURE_DDL", true, Bool, "install the DDL event trigger where the role may (else a schema change starts a new base)"),
  continuous_slot_alert_mb: setting("CONTINUOUS_SLOT_ALERT_MB", 1024, Count(0, 1024 * 1024), "alert when a slot's safe_wal_size falls below this (MiB) or its WAL is no longer reserved"),
  continuous_rpo_alert_seconds: setting("CONTINUOUS_RPO_ALERT_SECONDS", 300, Count(10, 86_400), "alert when the newest durable point of a stream is older than this"),
} satisfies Record<string, Setting<unknown>>;

type PlainSettings = { -readonly [K in keyof typeof SETTINGS]: (typeof SETTINGS)[K]["default"] };

/** The defaults of the plain settings (the ticket's). */
export const DEFAULTS = Object.fromEntries(Object.entries(SETTINGS).map(([k, s]) => [k, s.default])) as PlainSettings;

/** Settings built from several variables; their values are not echoed in errors (a key may be pasted by mistake). */
const Derived = z.object({
  database_encryption_enabled: z.literal(true, "backups are always encrypted; set BACKUP_ENCRYPTION_KEY"),
  /** Configured databases: name -> name of the secret holding its URL. */
  databases: z.record(DatabaseName, z.string()),
  default_database: DatabaseName,
  /** age recipients (public keys) new backups are encrypted to. */
  encryption_recipients: z.array(z.string().regex(AGE_X25519_RECIPIENT, "not an age X25519 recipient (age1…, 62 characters)")).min(1),
  /** R2 buckets this system protects: bucket name -> name of its Worker binding (STORAGE_BUCKETS). */
  storage_buckets: z.record(BucketName, z.string().regex(/^[A-Z][A-Z0-9_]*$/, "binding names are upper-case")),
  /** What the storage schedule snapshots: "bucket" or "bucket/prefix/" (STORAGE_BACKUP_SOURCES; default every bucket not a replica). */
  storage_backup_sources: z.array(z.object({ bucket: BucketName, prefix: z.string() })),
  /** Buckets under versioning from the start (STORAGE_VERSIONED_BUCKETS; default every bucket not a replica); more through the API. */
  storage_versioned_buckets: z.array(BucketName),
  /** Static replication pairs (STORAGE_REPLICATION "source=replica,…"); more can be switched on through the API. */
  storage_replication: z.record(BucketName, BucketName),
  /** Configured MLflow tracking servers: name -> names of the secrets holding its URI and (optional) token. */
  ml_servers: z.record(MlName, z.object({ uri_secret: z.string(), token_secret: z.string() })),
  default_ml_server: MlName,
  /** Training datasets (ML_DATASETS, JSON): id -> tables/queries of a configured database and/or R2 prefixes. */
  ml_datasets: z.record(MlName, TrainingDataset),
});

export type BackupConfig = PlainSettings & z.infer<typeof Derived>;

/** A credential or setting whose value check-config must not print. */
export function isSecretSetting(name: keyof typeof SETTINGS): boolean {
  return (SETTINGS[name] as Setting<unknown>).secret === true;
}

export type ConfigEnv = Record<string, unknown>;

/**
 * Builds the config from environment variables. Databases: BACKUP_DATABASES is
 * a comma list of names (default "astrid"); each name's URL is in the secret
 * DATABASE_URL_<NAME>, and the first name may use the ticket's DATABASE_URL.
 */
export function loadConfig(env: ConfigEnv): BackupConfig {
  const plain: Record<string, unknown> = {};
  for (const [field, s] of Object.entries(SETTINGS) as [string, Setting<unknown>][]) {
    const text = env[s.env];
    if (typeof text !== "string" || text === "") {
      plain[field] = s.default;
      continue;
    }
    const parsed = s.parse.safeParse(text);
    const shown = s.secret ? "(secret)" : JSON.stringify(text);
    if (!parsed.success) throw new ConfigError(`${s.env}=${shown}, config ${field}: ${parsed.error.issues[0]?.message}`);
    plain[field] = parsed.data;
  }
  const raw: Record<string, unknown> = {};
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
  const result = Derived.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    if (issue.path[0] === "ml_datasets") throw new ConfigError(`ML_DATASETS, config ${issue.path.join(".")}: ${issue.message}`);
    const where = `config ${issue.path.join(".") || "(root)"}`;
    throw new ConfigError(`${DERIVED[String(issue.path[0] ?? "")] ?? ""}, ${where}: ${issue.message}`);
  }
  for (const name of continuousDatabases(plain as PlainSettings)) {
    if (!(name in result.data.databases)) throw new ConfigError(`DATABASE_CONTINUOUS: "${name}" is not a configured database (BACKUP_DATABASES)`);
  }
  for (const [id, d] of Object.entries(result.data.ml_datasets)) {
    if (d.database && !(d.database in result.data.databases)) {
      throw new ConfigError(`ML_DATASETS, config ml_datasets.${id}.database: "${d.database}" is not a configured database (BACKUP_DATABASES)`);
    }
  }
  return { ...(plain as PlainSettings), ...result.data };
}

/** The variable each derived setting comes from, for errors. */
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

/**
 * Every variable the config reads: the settings table's, the derived
 * settings', and the per-name secrets (a database's URL, an MLflow server's
 * URI and token). What `npm start` lets the environment override.
 */
export function isConfigVariable(name: string): boolean {
  return Object.values(SETTINGS).some((s) => s.env === name) || Object.values(DERIVED).includes(name) || name === "ML_DATASETS"
    || /^DATABASE_URL(_[A-Z0-9_]+)?$/.test(name) || /^MLFLOW_TRACKING_(URI|TOKEN)(_[A-Z0-9_]+)?$/.test(name);
}

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
  // Credentials in the URI end up in error messages and logs; tokens belong in MLFLOW_TRACKING_TOKEN (issue #12).
  if (uri && /^[a-z][a-z0-9+.-]*:\/\/[^/]*@/i.test(uri)) {
    throw new ConfigError(`${server.uri_secret}: the tracking URI carries credentials (user:pass@); put the token in ${server.token_secret} instead`);
  }
  return uri ? { tracking_uri: uri, ...(token ? { token } : {}) } : undefined;
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

/** The databases under continuous archiving (DATABASE_CONTINUOUS). */
export function continuousDatabases(config: Pick<BackupConfig, "database_continuous">): string[] {
  return config.database_continuous.split(",").map((s) => s.trim()).filter(Boolean);
}

/**
 * Every schedule setting of the config: wrangler.toml must list each as a
 * cron trigger (npm run check-config). The registry's scheduled tasks each
 * run at one of these (test/workers/registry.test.ts checks it).
 */
export function configuredSchedules(config: BackupConfig): string[] {
  return [
    config.database_backup_schedule, config.database_incremental_schedule, config.database_archive_schedule, config.ml_backup_schedule,
    config.repository_gc_schedule, config.storage_backup_schedule, config.storage_reconcile_schedule, config.offsite_schedule,
    config.dr_test_schedule, config.dr_watch_schedule, config.continuous_watch_schedule,
  ];
}
