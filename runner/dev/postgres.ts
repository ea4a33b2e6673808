// Dev/test access to a PostgreSQL server: reuse the one the machine runs, or
// start a throwaway cluster when there is none (e.g. a fresh CI machine).
// Talks to PostgreSQL only through its command-line tools, so it needs no
// npm driver.
import { spawn, spawnSync } from "node:child_process";
import { constants, rmSync } from "node:fs";
import { access, chown, mkdir, mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { pgEnv } from "../database/pg-env.ts";

export { pgEnv };

export interface PgServer {
  url(database: string): string;
  host: string;
  port: number;
  user: string;
  stop(): Promise<void>;
}

const SUPERUSER = "postgres";

/**
 * Returns the server at PGHOST/PGPORT (default 127.0.0.1:5432) if it accepts
 * the postgres superuser; otherwise creates and starts a throwaway cluster,
 * which stop() shuts down and deletes (a caller's dataDir is kept, and
 * reused without initdb next time).
 * ASTRID_PG_FORCE_THROWAWAY=1 skips the existing server (to test that path).
 */
export async function ensurePostgres(opts: { dataDir?: string } = {}): Promise<PgServer> {
  if (process.env.ASTRID_PG_FORCE_THROWAWAY !== "1") {
    const existing = describeServer(
      process.env.PGHOST || "127.0.0.1",
      Number(process.env.PGPORT || 5432),
      async () => {},
    );
    if (await answers(existing)) return existing;
  }
  return startThrowaway(opts.dataDir);
}

/** Runs SQL (any number of statements, read from stdin) and returns psql's unaligned, tuples-only stdout. */
export async function psql(url: string, sql: string): Promise<string> {
  // -q drops command tags ("INSERT 0 5") so stdout holds only query results.
  const args = ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-tA", "-f", "-"];
  const result = await run("psql", args, { env: libpqEnv(url), input: sql });
  if (result.code !== 0) throw new Error(result.stderr.trim() || `psql exited with code ${result.code}`);
  return result.stdout;
}

/** (Re)creates an empty database and returns its URL. */
export async function createDatabase(server: PgServer, name: string): Promise<string> {
  // template0 so the database starts bare even if template1 was customised,
  // which is also what pg_restore's documentation asks of restore targets.
  await psql(
    server.url("postgres"),
    `DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE);
     CREATE DATABASE ${quoteIdent(name)} TEMPLATE template0;`,
  );
  return server.url(name);
}

export async function dropDatabase(server: PgServer, name: string): Promise<void> {
  await psql(server.url("postgres"), `DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE);`);
}

function describeServer(host: string, port: number, stop: () => Promise<void>): PgServer {
  // A socket directory in PGHOST goes into the URL percent-encoded, as libpq
  // expects; IPv6 literals need brackets.
  const hostPart = host.startsWith("/") ? encodeURIComponent(host) : host.includes(":") ? `[${host}]` : host;
  return {
    host,
    port,
    user: SUPERUSER,
    url: (database) => `postgres://${SUPERUSER}@${hostPart}:${port}/${encodeURIComponent(database)}`,
    stop,
  };
}

async function answers(server: PgServer): Promise<boolean> {
  try {
    await psql(`${server.url("postgres")}?connect_timeout=3`, "select 1");
    return true;
  } catch {
    return false;
  }
}

/**
 * A throwaway cluster with server settings of its own (e.g. wal_level=logical
 * for continuous archiving's tests), on a free port; stop() deletes it.
 */
export async function startThrowawayPostgres(settings: Record<string, string> = {}): Promise<PgServer> {
  return startThrowaway(undefined, settings);
}

async function startThrowaway(dataDir?: string, settings: Record<string, string> = {}): Promise<PgServer> {
  const binDir = await findPgBinDir();
  const workDir = await mkdtemp(join(tmpdir(), "astrid-pg-"));
  const data = dataDir ?? join(workDir, "data");
  const owner = await clusterOwner();
  const inWorkDir = { cwd: workDir, owner };
  try {
    await prepareDir(workDir, owner);
    if (!(await exists(join(data, "PG_VERSION")))) {
      await prepareDir(data, owner);
      // --no-locale keeps initdb independent of which locales the machine
      // has generated; UTF8 matches what production databases use.
      const initdbArgs = ["-D", data, "-A", "trust", "-U", SUPERUSER, "-E", "UTF8", "--no-locale", "--no-sync"];
      await runChecked(join(binDir, "initdb"), initdbArgs, inWorkDir);
    }
    const port = await freePort();
    const log = join(workDir, "server.log");
    const startArgs = ["-D", data, "-l", log, "-w", "-t", "60", "-o", serverOptions(port, workDir, settings), "start"];
    await runChecked(join(binDir, "pg_ctl"), startArgs, inWorkDir);
    return throwawayServer(port, binDir, data, workDir, owner, dataDir === undefined);
  } catch (error) {
    // pg_ctl may time out while a postmaster is still coming up: stop it
    // before deleting the directory from under it.
    await run(join(binDir, "pg_ctl"), ["-D", data, "-m", "immediate", "stop"], inWorkDir).catch(() => {});
    const log = await readFile(join(workDir, "server.log"), "utf8").catch(() => "");
    await rm(workDir, { recursive: true, force: true });
    throw new Error(`could not start a throwaway PostgreSQL: ${(error as Error).message}\n${log.slice(-2000)}`);
  }
}

// fsync=off: the cluster is thrown away, so durability buys nothing and
// costs a lot when seeding gigabytes. pg_ctl hands -o to a shell, hence the quoting.
function serverOptions(port: number, socketDir: string, settings: Record<string, string>): string {
  const extra = Object.entries(settings).map(([k, v]) => ` -c ${k}=${v}`).join("");
  return `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='${socketDir}' -c fsync=off${extra}`;
}

function throwawayServer(
  port: number,
  binDir: string,
  data: string,
  workDir: string,
  owner: Owner | null,
  ownsData: boolean,
): PgServer {
  const stopArgs = (mode: string) => ["-D", data, "-m", mode, "-w", "stop"];
  const cleanup = [workDir, ...(ownsData ? [data] : [])];
  // If the process exits without calling stop(), don't leave a postmaster
  // running: exit handlers must be synchronous, hence spawnSync/rmSync.
  const onExit = () => {
    const [cmd, args] = asOwner(join(binDir, "pg_ctl"), stopArgs("immediate"), owner);
    spawnSync(cmd, args, { cwd: workDir, stdio: "ignore" });
    for (const dir of cleanup) rmSync(dir, { recursive: true, force: true });
  };
  process.once("exit", onExit);
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      process.off("exit", onExit);
      await runChecked(join(binDir, "pg_ctl"), stopArgs("fast"), { cwd: workDir, owner });
      for (const dir of cleanup) await rm(dir, { recursive: true, force: true });
    })());
  return describeServer("127.0.0.1", port, stop);
}

// initdb and pg_ctl must come from the same installation. Debian keeps them
// off PATH in /usr/lib/postgresql/<major>/bin, where the newest major wins.
async function findPgBinDir(): Promise<string> {
  const pathDirs = (process.env.PATH ?? "").split(delimiter).filter(Boolean);
  const versions = await readdir("/usr/lib/postgresql").catch(() => [] as string[]);
  const debianDirs = versions
    .filter((v) => /^\d+$/.test(v))
    .sort((a, b) => Number(b) - Number(a))
    .map((v) => join("/usr/lib/postgresql", v, "bin"));
  for (const dir of [...pathDirs, ...debianDirs]) {
    if ((await isExecutable(join(dir, "initdb"))) && (await isExecutable(join(dir, "pg_ctl")))) return dir;
  }
  throw new Error("initdb/pg_ctl not found on PATH or in /usr/lib/postgresql/*/bin");
}

interface Owner {
  uid: number;
  gid: number;
}

// initdb and postgres refuse to run as root, so as root the cluster belongs
// to the postgres OS user; otherwise it belongs to whoever we are.
async function clusterOwner(): Promise<Owner | null> {
  if (process.getuid?.() !== 0) return null;
  const id = async (flag: string) => Number((await runChecked("id", [flag, SUPERUSER], {})).trim());
  return { uid: await id("-u"), gid: await id("-g") };
}

// Default mode on purpose: missing parents of a caller's dataDir must stay
// traversable by the postgres user; initdb tightens the data dir itself.
async function prepareDir(dir: string, owner: Owner | null): Promise<void> {
  await mkdir(dir, { recursive: true });
  if (owner) await chown(dir, owner.uid, owner.gid);
}

function asOwner(cmd: string, args: string[], owner: Owner | null): [string, string[]] {
  if (!owner) return [cmd, args];
  if (runuserAvailable()) return ["runuser", ["-u", SUPERUSER, "--", cmd, ...args]];
  // su takes one shell string, so every word is single-quoted.
  const line = [cmd, ...args].map((word) => `'${word.replaceAll("'", `'\\''`)}'`).join(" ");
  return ["su", [SUPERUSER, "-s", "/bin/sh", "-c", line]];
}

let hasRunuser: boolean | undefined;
function runuserAvailable(): boolean {
  return (hasRunuser ??= spawnSync("runuser", ["--version"], { stdio: "ignore" }).status === 0);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface RunOptions {
  env?: NodeJS.ProcessEnv;
  input?: string;
  cwd?: string;
  owner?: Owner | null;
}

function run(cmd: string, args: string[], opts: RunOptions): Promise<RunResult> {
  const [file, argv] = asOwner(cmd, args, opts.owner ?? null);
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: "pipe" });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
    // A child that dies early (e.g. psql failing to connect) closes stdin;
    // the exit code and stderr already report that, so the EPIPE is noise.
    child.stdin.on("error", () => {});
    child.once("error", reject);
    child.once("close", (code) =>
      resolve({ code, stdout: Buffer.concat(stdout).toString(), stderr: Buffer.concat(stderr).toString() }),
    );
    child.stdin.end(opts.input ?? "");
  });
}

async function runChecked(cmd: string, args: string[], opts: RunOptions): Promise<string> {
  const result = await run(cmd, args, opts);
  if (result.code !== 0) throw new Error(`${cmd} exited with code ${result.code}: ${result.stderr.trim()}`);
  return result.stdout;
}

// The URL is the whole truth: inherited PG* variables (a stray PGPASSWORD,
// PGSERVICE or PGOPTIONS) would otherwise mix into the connection.
function libpqEnv(url: string): NodeJS.ProcessEnv {
  const inherited = Object.entries(process.env).filter(([name]) => !name.startsWith("PG"));
  return { ...Object.fromEntries(inherited), ...pgEnv(url) };
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(() => true, () => false);
}

async function isExecutable(path: string): Promise<boolean> {
  return access(path, constants.X_OK).then(() => true, () => false);
}
