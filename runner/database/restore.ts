// database.restore: the dump stream piped into pg_restore in one transaction,
// so a restore that fails part-way leaves the target as it was. A target that
// already holds objects is refused unless the request said replace.
import { spawn } from "node:child_process";
import type { DatabaseRestoreDispatch as RestoreDispatch, DatabaseRestoreResult as RestoreResult } from "../../workers/database/protocol.ts";
import { AppError } from "../../workers/shared/errors.ts";
import type { JobContext } from "../job-context.ts";
import { readManifest } from "./manifest.ts";
import { dumpStream } from "./plaintext.ts";
import { feed } from "./feed.ts";
import { classifyPgError, exitOf, psql, stderrTail, toolEnv } from "./pg-tools.ts";
import { pgEnv } from "./pg-env.ts";

export async function restoreDatabase(job: RestoreDispatch, ctx: JobContext): Promise<RestoreResult> {
  const started = Date.now();
  const repo = ctx.repository;
  const manifest = await readManifest(repo, job.manifest_key);
  const target = await prepareTarget(job.target_url, job.replace);
  let bytes = 0;
  try {
    const args = ["--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error", `--dbname=${target.name}`];
    if (job.replace) args.push("--clean", "--if-exists");
    const restore = spawn("pg_restore", args, { env: toolEnv(job.target_url), stdio: ["pipe", "ignore", "pipe"] });
    const exited = exitOf(restore);
    const tail = stderrTail(restore);
    ctx.onCancel(() => restore.kill("SIGTERM"));
    const source = dumpStream(repo, manifest, job.identities, (n) => {
      bytes = n;
      ctx.progress({ phase: "restoring", bytes: n, chunks: 0 });
    });
    try {
      await feed(restore, source, false);
    } catch (e) {
      // A bad chunk: kill pg_restore before it commits; its transaction rolls back.
      restore.kill("SIGKILL");
      await exited.catch(() => {});
      throw e;
    }
    const { code } = await exited;
    if (code !== 0) throw classifyPgError("pg_restore", tail(), job.target_url);
  } catch (e) {
    if (target.created) await psql(target.maintenanceUrl, `DROP DATABASE IF EXISTS ${quoteIdent(target.name)} WITH (FORCE)`).catch(() => {});
    throw e;
  }
  return { kind: "database.restore", backup_id: job.backup_id, target_database: target.name, bytes, duration_ms: Date.now() - started };
}

const USER_OBJECTS = `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'`;

/** Creates the target database if it does not exist; refuses a non-empty one unless replacing. */
async function prepareTarget(url: string, replace: boolean) {
  const name = pgEnv(url).PGDATABASE;
  if (!name) throw new AppError("invalid_target", "the target connection names no database");
  const maintenance = new URL(url);
  maintenance.pathname = "/postgres";
  const maintenanceUrl = maintenance.toString();
  let objects: number;
  try {
    objects = Number(await psql(url, USER_OBJECTS));
  } catch (e) {
    if ((e as AppError).code !== "database_missing") throw e;
    await psql(maintenanceUrl, `CREATE DATABASE ${quoteIdent(name)} TEMPLATE template0`); // bare, as pg_restore expects
    return { name, created: true, maintenanceUrl };
  }
  if (objects > 0 && !replace) {
    throw new AppError("target_not_empty", `database "${name}" already holds ${objects} relations; restore with "replace": true to overwrite it`);
  }
  return { name, created: false, maintenanceUrl };
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
