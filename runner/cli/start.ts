// npm start: the whole system on this machine. wrangler dev serves the admin
// API (local R2, D1 and Queues), the runner runs as a process, and with no
// database configured a sample astronomy database is created and seeded.
import { join } from "node:path";
import { seedAstronomyDatabase } from "../dev/astronomy-seed.ts";
import { ensurePostgres, psql, type PgServer } from "../dev/postgres.ts";
import { startStack } from "../dev/stack.ts";
import { LOCAL_HOME, loadLocalVars } from "./local-vars.ts";

const SAMPLE_DATABASE = "astrid_sample";

async function sampleDatabase(pg: PgServer): Promise<string> {
  const exists = await psql(pg.url("postgres"), `SELECT 1 FROM pg_database WHERE datname = '${SAMPLE_DATABASE}'`);
  const url = pg.url(SAMPLE_DATABASE);
  if (exists.trim() !== "1") {
    console.log(`creating and seeding the sample astronomy database "${SAMPLE_DATABASE}"…`);
    await psql(pg.url("postgres"), `CREATE DATABASE ${SAMPLE_DATABASE}`);
    await seedAstronomyDatabase(url, { targetBytes: 20 * 1024 * 1024 });
  }
  return url;
}

/** The local stack's folder: R2, D1 and Queue state under state/ (wrangler's --persist-to), logs, the throwaway cluster. */
export const LOCAL_STATE = join(LOCAL_HOME, ".wrangler/astrid");

async function main() {
  // A process manager's SIGTERM (or Ctrl-C) stops the whole stack. While it
  // is still starting, the stop waits for the start to finish, so no half-started
  // process is left behind.
  let stopping: (() => Promise<void>) | undefined;
  let starting = true;
  let stopRequested = false;
  const shutdown = async () => {
    stopRequested = true;
    if (starting) return; // main() stops what it started once the start returns
    await stopping?.();
    process.exit(0);
  };
  process.on("SIGINT", shutdown);
  process.on("SIGTERM", shutdown);

  const { vars, created, added } = await loadLocalVars();
  if (created) console.log(`wrote ${join(LOCAL_HOME, ".dev.vars")} with fresh local secrets`);
  if (added.length) console.log(`added the missing local secrets ${added.join(", ")} to ${join(LOCAL_HOME, ".dev.vars")}`);
  let pg: PgServer | undefined;
  if (!vars.DATABASE_URL && !vars.DATABASE_URL_ASTRID) {
    pg = await ensurePostgres({ dataDir: join(LOCAL_STATE, "pgdata") });
    vars.DATABASE_URL = await sampleDatabase(pg);
  }
  if (stopRequested) return stopNow(pg);
  const stack = await startStack({
    dir: LOCAL_STATE, workerPort: Number(process.env.PORT ?? 8787), runnerPort: Number(process.env.RUNNER_PORT ?? 8788),
    vars, output: "inherit",
  });
  stopping = async () => {
    await stack.stop();
    await pg?.stop();
  };
  starting = false;
  if (stopRequested) return shutdown();
  console.log(`
astrid-backup is running locally.
  admin API      ${stack.workerUrl}
  console        ${stack.workerUrl}/console/   (sign in with a token below; docs/console.md)
  runner         ${stack.runnerUrl}
  admin token    ${vars.ADMIN_TOKEN}   (viewer: ${vars.VIEWER_TOKEN}; both in .dev.vars)

  curl -s -X POST -H "Authorization: Bearer ${vars.ADMIN_TOKEN}" ${stack.workerUrl}/backup/database -d '{"type":"full"}'
  curl -s -H "Authorization: Bearer ${vars.ADMIN_TOKEN}" ${stack.workerUrl}/backup/database
  curl -s "${stack.workerUrl}/__scheduled?cron=0+2+*+*+*"    # fire the 02:00 cron now

  R2 storage (local buckets astrid-data, replicated to astrid-data-replica):
  curl -s -X PUT -H "Authorization: Bearer ${vars.ADMIN_TOKEN}" --data-binary @README.md ${stack.workerUrl}/storage/objects/astrid-data/docs/README.md
  curl -s -X POST -H "Authorization: Bearer ${vars.ADMIN_TOKEN}" ${stack.workerUrl}/backup/storage -d '{"bucket":"astrid-data"}'
  curl -s -H "Authorization: Bearer ${vars.ADMIN_TOKEN}" ${stack.workerUrl}/backup/storage/status
`);
  console.log(`  local state    ${join(LOCAL_STATE, "state")}   (wrangler's --persist-to for the break-glass commands in docs/format.md)`);
  console.log(`
  Continuous archiving and point-in-time restore (docs/continuous.md): DATABASE_CONTINUOUS=astrid in .dev.vars, and a
  database server with wal_level=logical, a free replication slot and WAL sender, and max_slot_wal_keep_size set; then
  curl -s "${stack.workerUrl}/__scheduled?cron=*+*+*+*+*"    # the watch cron starts the stream (every minute on Cloudflare)
  curl -s -H "Authorization: Bearer ${vars.ADMIN_TOKEN}" "${stack.workerUrl}/backup/database/timeline?database=astrid"`);
}

async function stopNow(pg: PgServer | undefined) {
  await pg?.stop();
  process.exit(0);
}

await main();
