// Admin routes for database backups (ASTR-112's DatabaseBackupService over HTTP).
import { Hono, type Context } from "hono";
import { z } from "zod";
import type { AppEnv } from "../context.ts";
import { requireRole } from "../auth.ts";
import { databaseUrl } from "../config.ts";
import { base64url, fromBase64url, seal } from "../crypto.ts";
import { AppError, badRequest, conflict, notFound } from "../shared/errors.ts";
import { accepted, BackupAccepted, BackupView, backupView, kindContext, parseJson, parseQuery } from "../http.ts";
import { submitJob } from "../jobs/submit.ts";
import { BackupType, DatabaseName, VerifyDepth } from "../shared/protocol.ts";
import { databaseRestore, submitDatabaseBackup } from "./kinds.ts";
import type { KindRegistry } from "../jobs/kind.ts";
import type { BackupRow } from "../catalog/schema.ts";
import { checkTargetHost } from "../target-hosts.ts";
import { cleanupBackups, retentionPolicy } from "./cleanup.ts";
import type { BackupFilter } from "../catalog/catalog.ts";
import { describeGfs } from "./retention.ts";

export const databaseRoutes = new Hono<AppEnv>();

export const BackupRequest = z.strictObject({ type: BackupType.default("full"), database: DatabaseName.optional() });

databaseRoutes.post("/backup/database", requireRole("admin"), async (c) => {
  const body = await parseJson(c, BackupRequest);
  const config = c.get("config");
  const database = body.database ?? config.default_database;
  requireConfiguredDatabase(c, database);
  const submitted = await submitDatabaseBackup(kindContext(c), { database, type: body.type, actor: c.get("actor") });
  const answer: z.infer<typeof BackupAccepted> = { ...accepted(submitted), backup_id: submitted.backup_id };
  return c.json(answer, 202);
});

export const ListQuery = z.strictObject({
  database: DatabaseName.optional(),
  type: BackupType.optional(),
  status: z.enum(["completed", "corrupt"]).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().optional(),
});

/** A page of backups, newest first; next_cursor continues. */
export const BackupPage = z.strictObject({ backups: z.array(BackupView), next_cursor: z.string().optional() });

databaseRoutes.get("/backup/database", requireRole("viewer"), async (c) => {
  const q = parseQuery(c, ListQuery);
  const { database, ...rest } = q;
  return c.json(await backupPage(c, { ...rest, ...(database ? { source: database } : {}), domain: "database" }));
});

/** A page of catalog rows, newest first, with a cursor for the next; shared by the database and ML listings. */
export async function backupPage(c: Ctx, q: Omit<BackupFilter, "cursor"> & { cursor?: string | undefined }): Promise<z.infer<typeof BackupPage>> {
  const rows = await c.get("catalog").listBackups({ ...q, cursor: q.cursor ? decodeCursor(q.cursor) : undefined, limit: q.limit + 1 });
  const page = rows.slice(0, q.limit);
  const last = page[page.length - 1];
  return {
    backups: page.map(backupView),
    ...(rows.length > q.limit && last ? { next_cursor: encodeCursor(last.created_at, last.id) } : {}),
  };
}

/** One backup of any domain, with where its manifest is and the digest it records. */
export const BackupDetail = BackupView.extend({ manifest_key: z.string(), sha256: z.string() });

databaseRoutes.get("/backups/:id", requireRole("viewer"), async (c) => {
  const backup = await c.get("catalog").getBackup(c.req.param("id"));
  if (!backup) throw notFound("backup");
  const answer: z.infer<typeof BackupDetail> = { ...backupView(backup), manifest_key: backup.manifest_key, sha256: backup.sha256 };
  return c.json(answer);
});

export const RestoreRequest = z.strictObject({ target: z.string().min(1).max(2048), replace: z.boolean().default(false) });

/** Restores a backup of the database domain: the body is {target, replace?}. */
const restoreDatabaseBackup: BackupRestorer = async (c, backup) => {
  const body = await parseJson(c, RestoreRequest);
  const target = await restoreTarget(c, body.target);
  const submitted = await submitJob(kindContext(c), databaseRestore, { backup_id: backup.id, replace: body.replace, ...target }, {
    backup_id: backup.id, actor: c.get("actor"), target: `${backup.id} -> ${target.target_label}`,
  });
  return c.json(accepted(submitted), 202);
};

const KeepCount = z.number().int().min(0).max(100_000).optional();
const RetentionDays = z.number().int().min(1).max(36500).optional();

export const CleanupRequest = z.strictObject({
  retention_days: RetentionDays,
  archive_retention_days: RetentionDays,
  keep_last: KeepCount,
  keep_hourly: KeepCount,
  keep_daily: KeepCount,
  keep_weekly: KeepCount,
  keep_monthly: KeepCount,
  database: DatabaseName.optional(),
  dry_run: z.boolean().default(false),
});

const RetentionPolicyView = z.strictObject({
  retention_days: z.number().int(), archive_retention_days: z.number().int(),
  keep_last: z.number().int(), keep_hourly: z.number().int(), keep_daily: z.number().int(), keep_weekly: z.number().int(), keep_monthly: z.number().int(),
});

/** What retention removed (or would remove, dry_run) and what it kept, with the reasons. */
export const CleanupResponse = z.strictObject({
  retention_days: z.number().int(),
  policy: RetentionPolicyView,
  database: z.string().optional(),
  dry_run: z.boolean(),
  removed: z.number().int(),
  backup_ids: z.array(z.string()),
  kept: z.array(z.strictObject({ backup_id: z.string(), reasons: z.array(z.string()) })),
  removed_detail: z.array(z.strictObject({ backup_id: z.string(), reason: z.string() })),
});

// Retention (database/retention.ts): each field omitted falls back to the config
// (DATABASE_RETENTION_DAYS, DATABASE_ARCHIVE_RETENTION_DAYS, DATABASE_KEEP_*).
databaseRoutes.post("/backup/database/cleanup", requireRole("admin"), async (c) => {
  const body = await parseJson(c, CleanupRequest);
  const policy = retentionPolicy(c.get("config"), body);
  const outcome = await cleanupBackups(kindContext(c), { policy, source: body.database, dryRun: body.dry_run });
  const gfs = describeGfs(policy);
  await c.get("catalog").audit({
    actor: c.get("actor"), action: "database.cleanup",
    target: `${body.database ?? "all databases"}: older than ${policy.retention_days} days${gfs ? `, ${gfs}` : ""}`,
    outcome: "succeeded",
    detail: { dry_run: body.dry_run, policy, removed: outcome.backup_ids },
  });
  const answer: z.infer<typeof CleanupResponse> = {
    retention_days: policy.retention_days, policy, ...(body.database ? { database: body.database } : {}), ...outcome,
  };
  return c.json(answer);
});

export type Ctx = Context<AppEnv>;

export const VerifyRequest = z.strictObject({ depth: VerifyDepth.default("quick") });

/** Restores one backup: each domain reads its own request body (a database target, an MLflow server, ...). */
export type BackupRestorer = (c: Ctx, backup: BackupRow) => Promise<Response>;

/**
 * One route scheme for single backups of every domain: GET /backups/:id,
 * POST /backups/:id/verify (the registry names the kind that verifies the
 * domain) and POST /backups/:id/restore (the domain's restorer; the older
 * per-domain paths, e.g. /backup/ml/:id/restore, stay as aliases).
 */
export function backupItemRoutes(kinds: KindRegistry, restorers: Record<BackupRow["domain"], BackupRestorer>) {
  const routes = new Hono<AppEnv>();
  routes.post("/backups/:id/restore", requireRole("admin"), async (c) => {
    const backup = await c.get("catalog").getBackup(c.req.param("id"));
    if (!backup) throw notFound("backup");
    if (backup.status === "corrupt") throw conflict(`backup ${backup.id} failed verification; restore refused`);
    return restorers[backup.domain](c, backup);
  });
  routes.post("/backups/:id/verify", requireRole("admin"), async (c) => {
    const body = await parseJson(c, VerifyRequest);
    const backup = await c.get("catalog").getBackup(c.req.param("id"));
    if (!backup) throw notFound("backup");
    const verifier = kinds.verifierFor(backup.domain);
    if (!verifier) throw badRequest(`backups of domain ${backup.domain} cannot be verified`);
    const submitted = await submitJob(kindContext(c), verifier, { backup_id: backup.id, depth: body.depth }, {
      backup_id: backup.id, actor: c.get("actor"), target: backup.id,
    });
    return c.json(accepted(submitted), 202);
  });
  return routes;
}

function requireConfiguredDatabase(c: Ctx, name: string): void {
  const config = c.get("config");
  if (!(name in config.databases)) throw badRequest(`database "${name}" is not configured (BACKUP_DATABASES)`);
  if (!databaseUrl(config, c.env, name)) {
    throw new AppError("database_not_configured", `database "${name}" has no connection URL secret`, 422);
  }
}

/** A configured name, or a connection URL that is sealed at once and never stored or echoed in clear. Also a training-data restore's database. */
export async function restoreTarget(c: Ctx, target: string) {
  if (/^postgres(ql)?:\/\//.test(target)) {
    let name: string;
    let url: URL;
    try {
      url = new URL(target);
      name = decodeURIComponent(url.pathname.slice(1));
    } catch {
      throw badRequest("target: not a valid connection URL");
    }
    // Link-local and metadata hosts refused, RESTORE_TARGET_HOSTS enforced; the host goes into the audit line.
    const host = checkTargetHost(c.get("config"), url);
    if (!name) throw badRequest("target: the connection URL names no database");
    // libpq reads a name with "=" or "://" as a connection string: "host=elsewhere dbname=x" would reach another server.
    if (name.includes("=") || name.includes("://")) throw badRequest('target: the database name may not contain "=" or "://"');
    return { target_label: `${name} on ${host} (url)`, target_url_sealed: await seal(c.env.JOB_TOKEN_SECRET, target) };
  }
  if (!DatabaseName.safeParse(target).success) throw badRequest("target: a configured database name or a postgres:// URL");
  requireConfiguredDatabase(c, target);
  return { target_label: target, target_database: target };
}

function encodeCursor(created_at: string, id: string): string {
  return base64url(new TextEncoder().encode(JSON.stringify([created_at, id])));
}

function decodeCursor(cursor: string): { created_at: string; id: string } {
  try {
    const [created_at, id] = JSON.parse(new TextDecoder().decode(fromBase64url(cursor))) as [string, string];
    if (typeof created_at === "string" && typeof id === "string") return { created_at, id };
  } catch {
    // fall through
  }
  throw badRequest("cursor: not a cursor this API returned");
}

export { restoreDatabaseBackup };
