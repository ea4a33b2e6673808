// database.restore: the dump stream piped into pg_restore in one transaction,
// so a restore that fails part-way leaves the target as it was. A target that
// already holds objects is refused unless the request said replace. With the
// parallel mode configured (spool.ts), a new target is instead restored from a
// checked local copy of the dump by pg_restore -j N.
import { spawn } from "node:child_process";
import type { DatabaseRestoreDispatch as RestoreDispatch, DatabaseRestoreResult as RestoreResult } from "../../workers/database/protocol.ts";
import { AppError } from "../../workers/shared/errors.ts";
import type { JobContext } from "../job-context.ts";
import { readManifest } from "./manifest.ts";
import { dumpStream, type PlaintextStream } from "./plaintext.ts";
import { feed } from "./feed.ts";
import { classifyPgError, exitOf, psql, stderrTail, toolEnv } from "./pg-tools.ts";
import { pgEnv } from "./pg-env.ts";
import { pinnedPostgresUrl } from "../target-address.ts";
import { spool, spoolRefusal, spoolSettings } from "./spool.ts";

export async function restoreDatabase(job: RestoreDispatch, ctx: JobContext): Promise<RestoreResult> {
  const started = Date.now();
  const repo = ctx.repository;
  const manifest = await readManifest(repo, job.manifest_key);
  const settings = spoolSettings();
  // A target given as a URL: every address of its host checked now, and only the checked one used from here on.
  const targetUrl = await pinnedPostgresUrl(job.target_url, job.target_policy);
  const target = await prepareTarget(targetUrl, job.replace);
  let bytes = 0;
  try {
    const refusal = settings && (await spoolRefusal(settings, manifest.dump.logical_bytes, target.created));
    if (settings && refusal) console.warn(`restore ${job.backup_id}: streaming into one transaction, not in parallel: ${refusal}`);
    const source = dumpStream(repo, manifest, job.identities, (n) => {
      bytes = n;
      ctx.progress({ phase: settings && !refusal ? "spooling" : "restoring", bytes: n, chunks: 0 });
    }, job.chunk_id_key);
    // The database name reaches libpq only as PGDATABASE (toolEnv), never as --dbname=<name>: a name
    // such as "host=elsewhere dbname=x" would be read as a connection string and go past the checks
    // above. The conninfo given here names no database, so libpq takes it from the environment.
    const args = ["--no-owner", "--no-privileges", "--exit-on-error", "--dbname=application_name=astrid-backup"];
    if (job.replace) args.push("--clean", "--if-exists");
    if (settings && !refusal) {
      // The whole dump is checked (dump.sha256) before pg_restore reads a byte of it.
      const copy = await spool(source, settings.dir, (piece) => source.release(piece));
      try {
        ctx.progress({ phase: "restoring", bytes, chunks: 0 });
        console.log(`restore ${job.backup_id}: ${bytes} bytes spooled and checked; pg_restore --jobs=${settings.jobs}`);
        await pgRestore([...args, `--jobs=${settings.jobs}`, copy.file], targetUrl, ctx);
      } finally {
        await copy.dispose();
      }
    } else {
      await pgRestore([...args, "--single-transaction"], targetUrl, ctx, source);
    }
  } catch (e) {
    if (target.created) await psql(target.maintenanceUrl, `DROP DATABASE IF EXISTS ${quoteIdent(target.name)} WITH (FORCE)`).catch(() => {});
    throw e;
  }
  return { kind: "database.restore", backup_id: job.backup_id, target_database: target.name, bytes, duration_ms: Date.now() - started };
}

/** Runs pg_restore, feeding it `stdin` when given (then a failure of the stream kills it before it can commit). */
async function pgRestore(args: string[], targetUrl: string, ctx: JobContext, stdin?: PlaintextStream): Promise<void> {
  const restore = spawn("pg_restore", args, { env: toolEnv(targetUrl), stdio: [stdin ? "pipe" : "ignore", "ignore", "pipe"] });
  const exited = exitOf(restore);
  const tail = stderrTail(restore);
  ctx.onCancel(() => restore.kill("SIGTERM"));
  if (stdin) {
    const waiting = { ms: 0 };
    const start = performance.now();
    try {
      await feed(restore, timed(stdin, waiting), false, (piece) => stdin.release(piece));
      const fed = performance.now();
      exited.then(() => {
        const sec = (ms: number) => (ms / 1000).toFixed(1);
        console.log(`timeline: restore: stream ${sec(fed - start)} s = waiting for plaintext ${sec(waiting.ms)} s + writing into pg_restore ${sec(fed - start - waiting.ms)} s; ` +
          `pg_restore after the last byte ${sec(performance.now() - fed)} s`);
      }, () => {});
    } catch (e) {
      // A bad chunk: kill pg_restore before it commits; its transaction rolls back.
      restore.kill("SIGKILL");
      await exited.catch(() => {});
      throw e;
    }
  }
  const { code } = await exited;
  if (code !== 0) throw classifyPgError("pg_restore", tail(), targetUrl);
}

/** `source`, adding the time spent waiting for each next piece to `waiting.ms` (for the timeline line). */
async function* timed<T>(source: AsyncIterable<T>, waiting: { ms: number }): AsyncGenerator<T> {
  const it = source[Symbol.asyncIterator]();
  try {
    for (;;) {
      const before = performance.now();
      const next = await it.next();
      waiting.ms += performance.now() - before;
      if (next.done) return;
      yield next.value;
    }
  } finally {
    await it.return?.();
  }
}

const USER_OBJECTS = `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'`;

/** Creates the target database if it does not exist; refuses a non-empty one unless replacing. */
async function prepareTarget(url: string, replace: boolean) {
  const name = pgEnv(url).PGDATABASE;
  if (!name) throw new AppError("invalid_target", "the target connection names no database");
  if (!isPlainDatabaseName(name)) throw new AppError("invalid_target", "the target database name may not contain \"=\" or \"://\"");
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

/** A database name, not a connection string in disguise (libpq reads "k=v" and URIs as connection strings). */
export function isPlainDatabaseName(name: string): boolean {
  return !name.includes("=") && !name.includes("://");
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
