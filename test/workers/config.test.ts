// BackupConfig (workers/config.ts): the ticket's defaults, every environment
// override, ConfigError naming the variable, and the cron triggers in
// wrangler.toml covering every schedule the config uses.
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import wranglerToml from "../../wrangler.toml?raw";
import {
  ConfigError, databaseUrl, DEFAULTS, loadConfig, SETTINGS, type BackupConfig,
} from "../../workers/config.ts";
import { api } from "./helpers.ts";
import { kinds } from "../../workers/kinds.ts";
import { tasksForCron } from "../../workers/jobs/schedule.ts";

const RECIPIENT = "age1rgy76kk0pdvas8rc65nt2tfclrjrc3pjcn599g6zmtzpgzkuusls8cewrx";
const RECIPIENT_2 = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
/** The smallest valid environment: everything else defaults. */
const minimal = (extra: Record<string, unknown> = {}) => ({ BACKUP_ENCRYPTION_KEY: RECIPIENT, ...extra });

function expectConfigError(vars: Record<string, unknown>, variable: string): void {
  let thrown: unknown;
  try {
    loadConfig(vars);
  } catch (e) {
    thrown = e;
  }
  expect(thrown).toBeInstanceOf(ConfigError);
  expect((thrown as Error).message).toContain(variable);
}

// ---- wrangler.toml, read as text ----

/** Strips a TOML comment that is not inside a string. */
function stripComment(line: string): string {
  let inString = false;
  for (let i = 0; i < line.length; i++) {
    if (line[i] === '"' && line[i - 1] !== "\\") inString = !inString;
    if (line[i] === "#" && !inString) return line.slice(0, i);
  }
  return line;
}

/** The `crons = [...]` array of the top-level [triggers] table. */
function topLevelCrons(toml: string): string[] {
  const lines = toml.split("\n").map(stripComment);
  const start = lines.findIndex((l) => l.trim() === "[triggers]");
  if (start < 0) throw new Error("wrangler.toml has no [triggers] table");
  let text = "";
  for (const line of lines.slice(start + 1)) {
    if (/^\s*\[/.test(line)) break; // next table
    text += `${line}\n`;
  }
  const array = /crons\s*=\s*\[([\s\S]*?)\]/.exec(text);
  if (!array) throw new Error("[triggers] has no crons array");
  return [...array[1]!.matchAll(/"([^"]*)"/g)].map((m) => m[1]!);
}

/** The inline `triggers = { crons = [...] }` of [env.<name>]. */
function environmentCrons(toml: string, name: string): string[] {
  const section = toml.split(/^\[/m).find((s) => s.startsWith(`env.${name}]`));
  const inline = section && /^triggers\s*=\s*\{\s*crons\s*=\s*\[([^\]]*)\]/m.exec(section);
  if (!inline) throw new Error(`[env.${name}] has no triggers`);
  return [...inline[1]!.matchAll(/"([^"]*)"/g)].map((m) => m[1]!);
}

describe("loadConfig defaults", () => {
  it("are the ticket's BackupConfig values", () => {
    const config = loadConfig(minimal());
    expect(config).toEqual({
      ...DEFAULTS,
      database_encryption_enabled: true,
      databases: { astrid: "DATABASE_URL_ASTRID" },
      default_database: "astrid",
      encryption_recipients: [RECIPIENT],
      storage_buckets: {}, storage_replication: {}, storage_backup_sources: [], storage_versioned_buckets: [],
      ml_servers: { mlflow: { uri_secret: "MLFLOW_TRACKING_URI_MLFLOW", token_secret: "MLFLOW_TRACKING_TOKEN_MLFLOW" } },
      default_ml_server: "mlflow",
      ml_datasets: {},
    });
    // The ticket's own numbers, spelled out so a change to DEFAULTS is noticed here.
    expect(config).toMatchObject({
      database_backup_enabled: true, database_backup_schedule: "0 2 * * *", database_retention_days: 30,
      database_encryption_enabled: true, storage_backup_schedule: "0 3 * * *", ml_backup_schedule: "0 4 * * *",
      ml_artifact_retention_days: 90, dr_test_schedule: "0 0 * * 0", rto_target_minutes: 60, rpo_target_minutes: 15,
    });
  });

  it("treat an empty variable as unset", () => {
    expect(loadConfig(minimal({ DATABASE_RETENTION_DAYS: "", BACKUP_ENABLED: "" })).database_retention_days).toBe(30);
  });

  it("load from the test Worker's own bindings (wrangler.toml [vars] plus secrets)", () => {
    const config = loadConfig(env);
    expect(config.databases).toEqual({ astrid: "DATABASE_URL_ASTRID" });
    expect(config.encryption_recipients).toEqual([String(env.BACKUP_ENCRYPTION_KEY)]);
  });
});

describe("loadConfig environment overrides", () => {
  const overrides: [string, string, keyof BackupConfig, unknown][] = [
    ["BACKUP_ENABLED", "false", "backup_enabled", false],
    ["BACKUP_STORAGE_BUCKET", "astrid-dr", "backup_storage_bucket", "astrid-dr"],
    ["DATABASE_BACKUP_ENABLED", "0", "database_backup_enabled", false],
    ["DATABASE_BACKUP_SCHEDULE", "30 1 * * *", "database_backup_schedule", "30 1 * * *"],
    ["DATABASE_INCREMENTAL_SCHEDULE", "15 8-18 * * 1-5", "database_incremental_schedule", "15 8-18 * * 1-5"],
    ["DATABASE_ARCHIVE_SCHEDULE", "0 6 1 * *", "database_archive_schedule", "0 6 1 * *"],
    ["DATABASE_RETENTION_DAYS", "14", "database_retention_days", 14],
    ["DATABASE_ARCHIVE_RETENTION_DAYS", "730", "database_archive_retention_days", 730],
    ["DATABASE_KEEP_LAST", "3", "database_keep_last", 3],
    ["DATABASE_KEEP_HOURLY", "24", "database_keep_hourly", 24],
    ["DATABASE_KEEP_DAILY", "7", "database_keep_daily", 7],
    ["DATABASE_KEEP_WEEKLY", "4", "database_keep_weekly", 4],
    ["DATABASE_KEEP_MONTHLY", "12", "database_keep_monthly", 12],
    ["STORAGE_BACKUP_ENABLED", "false", "storage_backup_enabled", false],
    ["STORAGE_BACKUP_SCHEDULE", "0 */6 * * *", "storage_backup_schedule", "0 */6 * * *"],
    ["STORAGE_VERSIONING_ENABLED", "false", "storage_versioning_enabled", false],
    ["STORAGE_CROSS_REGION_REPLICATION", "0", "storage_cross_region_replication", false],
    ["ML_BACKUP_ENABLED", "false", "ml_backup_enabled", false],
    ["ML_BACKUP_SCHEDULE", "45 4 * * 1,3,5", "ml_backup_schedule", "45 4 * * 1,3,5"],
    ["ML_ARTIFACT_RETENTION_DAYS", "180", "ml_artifact_retention_days", 180],
    ["ML_MODEL_VERSIONING", "false", "ml_model_versioning", false],
    ["DR_TESTING_ENABLED", "false", "dr_testing_enabled", false],
    ["DR_TEST_SCHEDULE", "0 1 * * 6", "dr_test_schedule", "0 1 * * 6"],
    ["DR_WATCH_SCHEDULE", "*/5 * * * *", "dr_watch_schedule", "*/5 * * * *"],
    ["DR_DOMAINS", "database,catalog", "dr_domains", "database,catalog"],
    ["DR_RESTORE_POINT", "random", "dr_restore_point", "random"],
    ["DR_RANDOM_WINDOW_DAYS", "3", "dr_random_window_days", 3],
    ["DR_DATABASE_URL", "postgres://drill@db/postgres", "dr_database_url", "postgres://drill@db/postgres"],
    ["DR_STORAGE_SAMPLE", "25", "dr_storage_sample", 25],
    ["DR_SCRATCH_BUCKET", "astrid-scratch", "dr_scratch_bucket", "astrid-scratch"],
    ["DR_MLFLOW_TRACKING_URI", "http://mlflow-scratch:5000", "dr_mlflow_tracking_uri", "http://mlflow-scratch:5000"],
    ["DR_MLFLOW_TRACKING_TOKEN", "tok", "dr_mlflow_tracking_token", "tok"],
    ["AGE_ESCROW_IDENTITY", "AGE-SECRET-KEY-1X", "age_escrow_identity", "AGE-SECRET-KEY-1X"],
    ["DR_CANARY", "true", "dr_canary", true],
    ["ALERT_WEBHOOK_URLS", "https://hooks.slack.com/x", "alert_webhook_urls", "https://hooks.slack.com/x"],
    ["ALERT_DEADMAN_URL", "https://hc-ping.com/x", "alert_deadman_url", "https://hc-ping.com/x"],
    ["ALERT_REPLICATION_LAG_SECONDS", "60", "alert_replication_lag_seconds", 60],
    ["ALERT_BACKUP_GRACE_MINUTES", "30", "alert_backup_grace_minutes", 30],
    ["RTO_TARGET_MINUTES", "120", "rto_target_minutes", 120],
    ["RPO_TARGET_MINUTES", "5", "rpo_target_minutes", 5],
    ["JOB_LEASE_SECONDS", "300", "job_lease_seconds", 300],
    ["REPOSITORY_GC_SCHEDULE", "0 7 * * 6", "repository_gc_schedule", "0 7 * * 6"],
    ["GC_GRACE_MINUTES", "90", "gc_grace_minutes", 90],
    ["STORAGE_PAGE_SIZE", "50", "storage_page_size", 50],
    ["STORAGE_MULTIPART_THRESHOLD_BYTES", "10485760", "storage_multipart_threshold_bytes", 10485760],
    ["STORAGE_PART_SIZE_BYTES", "5242880", "storage_part_size_bytes", 5242880],
    ["STORAGE_RECONCILE_SCHEDULE", "*/30 * * * *", "storage_reconcile_schedule", "*/30 * * * *"],
    ["STORAGE_RETENTION_DAYS", "7", "storage_retention_days", 7],
    ["STORAGE_VERSION_RETENTION_DAYS", "14", "storage_version_retention_days", 14],
    ["OFFSITE_SCHEDULE", "30 6 * * *", "offsite_schedule", "30 6 * * *"],
    ["DATABASE_VERIFY_AFTER_BACKUP", "full", "database_verify_after_backup", "full"],
    ["RUNNER_MAX_JOBS", "2", "runner_max_jobs", 2],
    ["DATABASE_CONTINUOUS", "astrid", "database_continuous", "astrid"],
    ["CONTINUOUS_SEGMENT_SECONDS", "10", "continuous_segment_seconds", 10],
    ["CONTINUOUS_SEGMENT_MAX_MB", "4", "continuous_segment_max_mb", 4],
    ["CONTINUOUS_HEARTBEAT_SECONDS", "5", "continuous_heartbeat_seconds", 5],
    ["CONTINUOUS_WATCH_SCHEDULE", "*/2 * * * *", "continuous_watch_schedule", "*/2 * * * *"],
    ["CONTINUOUS_REBASE_HOURS", "0.5", "continuous_rebase_hours", 0.5],
    ["CONTINUOUS_CAPTURE_DDL", "false", "continuous_capture_ddl", false],
    ["CONTINUOUS_SLOT_ALERT_MB", "512", "continuous_slot_alert_mb", 512],
    ["CONTINUOUS_RPO_ALERT_SECONDS", "120", "continuous_rpo_alert_seconds", 120],
    ["RESTORE_TARGET_HOSTS", "db.example.org", "restore_target_hosts", "db.example.org"],
    ["RESTORE_TARGET_REFUSE_LOOPBACK", "true", "restore_target_refuse_loopback", true],
    ["CF_ACCESS_TEAM_DOMAIN", "astrid.cloudflareaccess.com", "cf_access_team_domain", "astrid.cloudflareaccess.com"],
    ["CF_ACCESS_AUD", "aud-tag", "cf_access_aud", "aud-tag"],
    ["OFFSITE_S3_ENDPOINT", "https://s3.example.org", "offsite_s3_endpoint", "https://s3.example.org"],
    ["OFFSITE_S3_BUCKET", "astrid-offsite", "offsite_s3_bucket", "astrid-offsite"],
    ["OFFSITE_S3_REGION", "eu-central-1", "offsite_s3_region", "eu-central-1"],
    ["OFFSITE_S3_PREFIX", "astrid/", "offsite_s3_prefix", "astrid/"],
    ["OFFSITE_ACCESS_KEY_ID", "AKIAEXAMPLE", "offsite_access_key_id", "AKIAEXAMPLE"],
    ["OFFSITE_SECRET_ACCESS_KEY", "offsite-secret", "offsite_secret_access_key", "offsite-secret"],
    ["R2_S3_ENDPOINT", "https://acc.r2.cloudflarestorage.com", "r2_s3_endpoint", "https://acc.r2.cloudflarestorage.com"],
    ["R2_ACCESS_KEY_ID", "r2-key", "r2_access_key_id", "r2-key"],
    ["R2_SECRET_ACCESS_KEY", "r2-secret", "r2_secret_access_key", "r2-secret"],
    ["R2_JURISDICTION", "eu", "r2_jurisdiction", "eu"],
    ["CLOUDFLARE_ACCOUNT_ID", "0123abcd", "cloudflare_account_id", "0123abcd"],
    ["CLOUDFLARE_API_TOKEN", "cf-token", "cloudflare_api_token", "cf-token"],
  ];

  for (const [variable, text, field, expected] of overrides) {
    it(`${variable}=${JSON.stringify(text)} sets ${field}`, () => {
      const config = loadConfig(minimal({ [variable]: text }));
      expect(config[field]).toEqual(expected);
      expect(expected).not.toEqual(DEFAULTS[field as keyof typeof DEFAULTS]); // the override must change something
      // Nothing else moved.
      expect({ ...config, [field]: undefined }).toEqual({ ...loadConfig(minimal()), [field]: undefined });
    });
  }

  it("cover every setting of the settings table, each by the variable the table names", () => {
    const covered = new Map(overrides.map(([variable, , field]) => [field as string, variable]));
    for (const [field, s] of Object.entries(SETTINGS)) expect(covered.get(field), field).toBe(s.env);
    expect(Object.keys(DEFAULTS).sort()).toEqual(Object.keys(SETTINGS).sort());
  });

  it("never echo a secret setting's value in an error", () => {
    let thrown: unknown;
    try {
      loadConfig(minimal({ RUNNER_MAX_JOBS: "many" }));
    } catch (e) {
      thrown = e;
    }
    expect((thrown as Error).message).toMatch(/RUNNER_MAX_JOBS="many"/);
    expect(SETTINGS.offsite_secret_access_key.secret).toBe(true);
  });

  it("accept true/1 for booleans", () => {
    expect(loadConfig(minimal({ BACKUP_ENABLED: "true" })).backup_enabled).toBe(true);
    expect(loadConfig(minimal({ ML_MODEL_VERSIONING: "1" })).ml_model_versioning).toBe(true);
  });

  it("BACKUP_DATABASES lists the databases, the first is the default", () => {
    const config = loadConfig(minimal({ BACKUP_DATABASES: " sky , astrid,lab_2 " }));
    expect(config.databases).toEqual({ sky: "DATABASE_URL_SKY", astrid: "DATABASE_URL_ASTRID", lab_2: "DATABASE_URL_LAB_2" });
    expect(config.default_database).toBe("sky");
  });

  it("BACKUP_ENCRYPTION_KEY may list several recipients", () => {
    expect(loadConfig(minimal({ BACKUP_ENCRYPTION_KEY: `${RECIPIENT}, ${RECIPIENT_2}` })).encryption_recipients).toEqual([RECIPIENT, RECIPIENT_2]);
  });
});

describe("loadConfig bad values throw ConfigError naming the variable", () => {
  const bad: [string, string][] = [
    ["BACKUP_ENABLED", "yes"],
    ["DATABASE_BACKUP_ENABLED", "on"],
    ["STORAGE_VERSIONING_ENABLED", "TRUE"],
    ["DATABASE_BACKUP_SCHEDULE", "daily at 2"],
    ["DATABASE_BACKUP_SCHEDULE", "0 2 * *"],
    ["DATABASE_INCREMENTAL_SCHEDULE", "0 9-17 * * MON-FRI"],
    ["DATABASE_ARCHIVE_SCHEDULE", "@weekly"],
    ["STORAGE_BACKUP_SCHEDULE", "0 3 * * * *"],
    ["DR_TEST_SCHEDULE", "0 0 ? * 0"],
    ["DATABASE_RETENTION_DAYS", "thirty"],
    ["DATABASE_RETENTION_DAYS", "0"],
    ["DATABASE_RETENTION_DAYS", "-1"],
    ["DATABASE_RETENTION_DAYS", "7.5"],
    ["DATABASE_RETENTION_DAYS", "99999"],
    ["DATABASE_ARCHIVE_RETENTION_DAYS", "0"],
    ["DATABASE_ARCHIVE_RETENTION_DAYS", "a year"],
    ["DATABASE_KEEP_DAILY", "-1"],
    ["DATABASE_KEEP_WEEKLY", "1.5"],
    ["DATABASE_KEEP_MONTHLY", "twelve"],
    ["DATABASE_KEEP_LAST", "1000000"],
    ["ML_ARTIFACT_RETENTION_DAYS", "forever"],
    ["RTO_TARGET_MINUTES", "0"],
    ["RPO_TARGET_MINUTES", "a quarter hour"],
    ["JOB_LEASE_SECONDS", "soon"],
    ["JOB_LEASE_SECONDS", "0"],
    ["REPOSITORY_GC_SCHEDULE", "weekly"],
    ["GC_GRACE_MINUTES", "-5"],
    ["DATABASE_VERIFY_AFTER_BACKUP", "sometimes"],
  ];
  for (const [variable, text] of bad) {
    it(`${variable}=${JSON.stringify(text)}`, () => expectConfigError(minimal({ [variable]: text }), variable));
  }

  it("a database name that is not a safe identifier names BACKUP_DATABASES", () => {
    expectConfigError(minimal({ BACKUP_DATABASES: "astrid,Sky-Prod" }), "BACKUP_DATABASES");
  });

  it("a missing BACKUP_ENCRYPTION_KEY names BACKUP_ENCRYPTION_KEY", () => {
    expectConfigError({}, "BACKUP_ENCRYPTION_KEY");
  });

  it("a malformed BACKUP_ENCRYPTION_KEY names BACKUP_ENCRYPTION_KEY", () => {
    expectConfigError({ BACKUP_ENCRYPTION_KEY: "not-an-age-key" }, "BACKUP_ENCRYPTION_KEY");
  });

  it("DATABASE_ENCRYPTION_ENABLED=false is refused: backups are always encrypted", () => {
    expectConfigError(minimal({ DATABASE_ENCRYPTION_ENABLED: "false" }), "DATABASE_ENCRYPTION_ENABLED");
  });

  it("surfaces on the API as 500 config_invalid and on /health as 503", async () => {
    const vars = { DATABASE_RETENTION_DAYS: "thirty" };
    const res = await api("GET", "/backup/database", { env: vars });
    expect(res.status).toBe(500);
    expect(res.body.error).toEqual({ code: "config_invalid", message: expect.stringContaining("DATABASE_RETENTION_DAYS") });
    const health = await api("GET", "/health", { token: null, env: vars });
    expect(health.status).toBe(503);
    expect(health.body).toMatchObject({ status: "unhealthy", error: { code: "config_invalid" } });
  });
});

describe("schedules", () => {
  const names = (config: ReturnType<typeof loadConfig>, cron: string) => tasksForCron(kinds, config, cron).map((t) => t.name);

  it("map each configured cron to its backup type", () => {
    const config = loadConfig(minimal());
    expect(names(config, "0 2 * * *")).toEqual(["database full backups"]);
    expect(names(config, "0 9-17 * * 1-5")).toEqual(["database incremental backups"]);
    expect(names(config, "0 5 * * 0")).toEqual(["database archive backups"]);
    expect(names(config, "*/10 * * * *")).toEqual(["DR watch (alerts, lost drills, canaries)"]); // with the lost-job sweep
  });

  it("yield no work when backups are disabled", () => {
    expect(names(loadConfig(minimal({ BACKUP_ENABLED: "false" })), "0 2 * * *")).toEqual([]);
    expect(names(loadConfig(minimal({ DATABASE_BACKUP_ENABLED: "false" })), "0 2 * * *")).toEqual([]);
  });

  it("yield both types when two schedules are the same cron", () => {
    const config = loadConfig(minimal({ DATABASE_ARCHIVE_SCHEDULE: "0 2 * * *" }));
    expect(names(config, "0 2 * * *")).toEqual(["database full backups", "database archive backups"]);
  });

  it("map the garbage-collection schedule to repository and storage garbage collection", () => {
    const config = loadConfig(minimal());
    expect(names(config, "0 6 * * 0")).toEqual(["repository garbage collection", "storage garbage collection"]);
  });

  it("are all listed in wrangler.toml's [triggers] crons", () => {
    const crons = topLevelCrons(wranglerToml);
    expect(crons).toContain("*/10 * * * *"); // the parser found the real list, sweep included
    for (const config of [loadConfig(minimal()), loadConfig(env)]) {
      const schedules = kinds.schedules(config);
      expect(schedules.length).toBeGreaterThanOrEqual(8);
      expect(schedules.filter((s) => !crons.includes(s))).toEqual([]);
    }
  });

  it("are all listed in the production environment's triggers too", () => {
    const crons = environmentCrons(wranglerToml, "production");
    expect(kinds.schedules(loadConfig(minimal())).filter((s) => !crons.includes(s))).toEqual([]);
    expect(crons.sort()).toEqual(topLevelCrons(wranglerToml).sort());
  });

  it("every wrangler.toml cron is one the config or the sweep uses (no orphan triggers)", () => {
    const used = new Set([...kinds.schedules(loadConfig(minimal())), "*/10 * * * *"]);
    expect(topLevelCrons(wranglerToml).filter((c) => !used.has(c))).toEqual([]);
  });
});

describe("wrangler.toml queue consumers", () => {
  it("retry a bounded number of times and then dead-letter to a queue whose name ends in -dlq, which is consumed", () => {
    const consumers = wranglerToml.split("[[queues.consumers]]").slice(1).map((block) => block.split(/^\[/m)[0]!);
    const jobs = consumers.find((b) => /queue\s*=\s*"astrid-backup-jobs"/.test(b));
    expect(jobs).toBeDefined();
    const retries = Number(/max_retries\s*=\s*(\d+)/.exec(jobs!)?.[1]);
    expect(retries).toBeGreaterThan(0);
    expect(retries).toBeLessThanOrEqual(10);
    const dlq = /dead_letter_queue\s*=\s*"([^"]+)"/.exec(jobs!)?.[1];
    expect(dlq).toMatch(/-dlq$/); // the consumer recognises dead letters by this suffix
    expect(consumers.some((b) => b.includes(`queue = "${dlq}"`))).toBe(true);
  });
});

describe("databaseUrl", () => {
  const config = loadConfig(minimal({ BACKUP_DATABASES: "astrid,sky" }));

  it("reads DATABASE_URL_<NAME>, falling back to DATABASE_URL for the default database only", () => {
    expect(databaseUrl(config, { DATABASE_URL: "postgres://a/astrid" }, "astrid")).toBe("postgres://a/astrid");
    expect(databaseUrl(config, { DATABASE_URL: "postgres://a/astrid", DATABASE_URL_ASTRID: "postgres://b/astrid" }, "astrid")).toBe("postgres://b/astrid");
    expect(databaseUrl(config, { DATABASE_URL: "postgres://a/astrid" }, "sky")).toBeUndefined();
    expect(databaseUrl(config, { DATABASE_URL_SKY: "postgres://c/sky" }, "sky")).toBe("postgres://c/sky");
  });

  it("knows no URL for a database that is not configured or whose secret is empty", () => {
    expect(databaseUrl(config, { DATABASE_URL_GHOST: "postgres://x/ghost" }, "ghost")).toBeUndefined();
    expect(databaseUrl(config, { DATABASE_URL_SKY: "" }, "sky")).toBeUndefined();
  });
});
