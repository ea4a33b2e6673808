// Database backup/restore benchmark: our pipeline (pg_dump -Fc -Z0 ->
// chunking -> zstd -> age -> repository, and back into pg_restore) against
// bare pg_dump / pg_restore and against restic (pg_dump | restic backup
// --stdin, restic dump | pg_restore) on the same database, plus the runner's
// peak memory and CPU per GiB. Runs the real local stack (wrangler dev +
// runner), like the tests. Prints the load average at both ends: on a shared
// machine, compare CPU-seconds rather than wall times across runs.
//
//   npm exec -- node bench/database.ts [--size 1GB | --sizes 200MB,1GB,4GB]
//                                      [--no-verify] [--cpu-prof] [--keep-dumps]
//                                      [--parallel-jobs N]  (also the parallel restore mode vs pg_restore -j N)
//
// Sizes are pg_database_size targets (binary units: 1GB = 1 GiB). Source
// databases (bench_src_<size>) are kept and reused by later runs; their
// COMMENT records the seeded size. Everything else (the stack, dump files,
// restore targets) is removed at the end, also on Ctrl-C.
// The last line of stdout is the whole result as one JSON object.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { seedAstronomyDatabase } from "../runner/dev/astronomy-seed.ts";
import { tableFingerprints } from "../runner/dev/compare.ts";
import { createDatabase, dropDatabase, ensurePostgres, pgEnv, psql, type PgServer } from "../runner/dev/postgres.ts";
import { generateLocalSecrets, type LocalSecrets } from "../runner/dev/secrets.ts";
import { freePort, ROOT, type Stack, type startStack as StartStack } from "../runner/dev/stack.ts";
import { freezeCode } from "./support/frozen-code.ts";
import { formatSummary, summarizeProfileFile, type ProfileSummary } from "./support/cpu-profile.ts";
import { cpuDelta, cpuSnapshot, descendantPids, loadAverage, machineCpu, sampleRss, type CpuByRole, type RssSampler } from "./support/proc.ts";
import { ensureRestic, resticRepo } from "./support/restic.ts";

const TARGET_RATIO = 1.3;
const TARGET_RSS = 192 * 1024 * 1024;
// Issue #14's targets, each a ratio printed below from the same run.
const TARGETS = {
  backup_vs_restic: 1.0, backup_vs_pg_dump_z0: 1.5, restore_vs_restic: 1.0, restore_vs_pg_restore_file: 1.1,
  runner_cpu_s_per_gib_backup: 15, runner_cpu_s_per_gib_restore: 8,
};
const SEED_MARKER = "astrid-bench-source v1";
const POLL_MS = 100;
const MiB = 1024 * 1024;

// ---------------------------------------------------------------- arguments

const { values: args } = parseArgs({
  options: {
    size: { type: "string" },
    sizes: { type: "string" },
    "no-verify": { type: "boolean", default: false },
    "cpu-prof": { type: "boolean", default: false },
    "keep-dumps": { type: "boolean", default: false },
    "no-snapshot": { type: "boolean", default: false },
    "chunk-avg": { type: "string" },
    "zstd-level": { type: "string" },
    "runner-node-flags": { type: "string" },
    "runner-env": { type: "string", multiple: true },
    "memory-probe": { type: "boolean", default: false },
    "parallel-jobs": { type: "string" },
    "no-gzip": { type: "boolean", default: false },
    "ours-only": { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});
if (args.help) {
  console.log("usage: node bench/database.ts [--size 1GB | --sizes 200MB,1GB,4GB] [--no-verify] [--cpu-prof] [--keep-dumps] [--no-snapshot] [--parallel-jobs N]\n" +
    "  [--no-gzip] skip the pg_dump -Fc (gzip) phases, which no target uses (slow on a loaded machine)\n" +
    "  [--ours-only] only our backup and restore (no bare tools, restic, rerun or verify): for peak RSS at large sizes\n" +
    "  what-if (patches the snapshot only): [--chunk-avg 1MB] (min avg/4, max avg*4) [--zstd-level 1]\n" +
    "    [--runner-node-flags=--max-semi-space-size=8] (replaces stack.ts's RUNNER_NODE_FLAGS; --runner-node-flags= for none)\n" +
    "  [--runner-env NAME=VALUE]... extra environment for the runner (e.g. MALLOC_ARENA_MAX=2, UV_THREADPOOL_SIZE=2)\n" +
    "  [--memory-probe] log the runner's V8 heap / external / ArrayBuffer memory and report it at the RSS peak");
  process.exit(0);
}

interface Size {
  label: string;
  bytes: number;
}

function parseSize(text: string): Size {
  const m = /^(\d+(?:\.\d+)?)\s*(k|m|g|t)i?b?$/i.exec(text.trim());
  if (!m) throw new Error(`not a size: ${text} (e.g. 200MB, 1GB, 4GB)`);
  const unit = m[2]!.toLowerCase();
  const bytes = Math.round(Number(m[1]) * 1024 ** ("kmgt".indexOf(unit) + 1));
  return { label: `${m[1]!.replace(".", "_")}${unit}b`, bytes };
}

const sizes = (args.sizes ?? args.size ?? "1GB").split(",").filter(Boolean).map(parseSize);

// ---------------------------------------------------------------- cleanup

const cleanups: (() => Promise<void> | void)[] = [];
let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  return (cleaning ??= (async () => {
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch (e) {
        console.error(`cleanup: ${(e as Error).message}`);
      }
    }
  })());
}
const liveChildren = new Set<ChildProcess>();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: cleaning up`);
    for (const c of liveChildren) c.kill("SIGKILL");
    void cleanup().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------- helpers

const log = (msg: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);

/** Runs a PostgreSQL tool against url; stdout to a file path or /dev/null. Returns wall ms. */
async function timeTool(cmd: string, argv: string[], url: string, stdoutPath = "/dev/null", env: Record<string, string> = {}): Promise<number> {
  const out = openSync(stdoutPath, "w");
  const started = performance.now();
  try {
    const child = spawn(cmd, argv, { stdio: ["ignore", out, "pipe"], env: { ...withoutPg(process.env), ...pgEnv(url), ...env } });
    liveChildren.add(child);
    let stderr = "";
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr = (stderr + d).slice(-4000)));
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once("error", reject);
      child.once("close", resolve);
    });
    liveChildren.delete(child);
    if (code !== 0) throw new Error(`${cmd} ${argv.join(" ")} exited ${code}: ${stderr.trim()}`);
    return performance.now() - started;
  } finally {
    closeSync(out);
  }
}

function withoutPg(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith("PG")));
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Whole-phase measurements around fn: wall time, CPU per role, machine load. */
const FOLDED = new Set(["wrangler"]);
const phasesWithWorkerReload: string[] = [];

async function measured<T>(label: string, roleOf: (s: { pid: number; comm: string }) => string, fn: () => Promise<T>) {
  log(`${label} ...`);
  const load = loadAverage();
  const workerd0 = descendantPids("workerd");
  const cpu0 = cpuSnapshot(roleOf, FOLDED);
  const m0 = machineCpu();
  const t0 = performance.now();
  const value = await fn();
  const wall_ms = Math.round(performance.now() - t0);
  const m1 = machineCpu();
  const cpu = cpuDelta(cpu0, cpuSnapshot(roleOf, FOLDED));
  const machine_busy_pct = Math.round((100 * (m1.busy - m0.busy)) / Math.max(1e-9, m1.total - m0.total));
  // wrangler dev rebuilds and restarts workerd when a watched source file
  // changes; a restart in the middle of a phase distorts it.
  const worker_reloaded = descendantPids("workerd").some((pid) => !workerd0.includes(pid));
  if (worker_reloaded) phasesWithWorkerReload.push(label);
  log(`${label}: ${(wall_ms / 1000).toFixed(1)} s (machine ${machine_busy_pct}% busy; cpu ${fmtCpu(cpu)})${worker_reloaded ? " [WORKER RELOADED during this phase]" : ""}`);
  return { value, wall_ms, cpu, machine_busy_pct, load_before: load, ...(worker_reloaded ? { worker_reloaded } : {}) };
}

function fmtCpu(cpu: CpuByRole): string {
  return Object.entries(cpu).filter(([, v]) => v >= 0.05).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v.toFixed(1)}s`).join(", ");
}

// ---------------------------------------------------------------- source databases

async function ensureSource(pg: PgServer, size: Size): Promise<{ name: string; url: string; bytes: number; seeded_ms?: number }> {
  const name = `bench_src_${size.label}`;
  const marker = `${SEED_MARKER} target_bytes=${size.bytes}`;
  const admin = pg.url("postgres");
  const existing = (await psql(admin, `SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '${name}'`)).trim();
  const url = pg.url(name);
  if (existing === marker) {
    const bytes = Number(await psql(url, "SELECT pg_database_size(current_database())"));
    log(`reusing ${name} (${(bytes / MiB).toFixed(0)} MiB)`);
    return { name, url, bytes };
  }
  log(`seeding ${name} to ${(size.bytes / MiB).toFixed(0)} MiB${existing ? ` (replacing: comment was ${JSON.stringify(existing)})` : ""} ...`);
  const t0 = performance.now();
  await createDatabase(pg, name);
  await seedAstronomyDatabase(url, { targetBytes: size.bytes });
  // The marker goes on last: an interrupted seed is never reused.
  await psql(admin, `COMMENT ON DATABASE ${quoteIdent(name)} IS '${marker}'`);
  const seeded_ms = Math.round(performance.now() - t0);
  const bytes = Number(await psql(url, "SELECT pg_database_size(current_database())"));
  log(`seeded ${name}: ${(bytes / MiB).toFixed(0)} MiB in ${(seeded_ms / 1000).toFixed(0)} s`);
  return { name, url, bytes, seeded_ms };
}

// ---------------------------------------------------------------- the stack

/**
 * The code under test, frozen at the start: a copy of the sources the stack
 * runs (node_modules linked), so edits made to the working tree while the
 * bench runs neither restart wrangler dev's Worker mid-phase nor change the
 * runner between phases. --no-snapshot runs the working tree itself.
 */
async function codeUnderTest(): Promise<{ root: string; startStack: typeof StartStack }> {
  if (args["no-snapshot"]) {
    if (args["chunk-avg"] || args["zstd-level"] || args["runner-node-flags"] !== undefined) {
      throw new Error("--chunk-avg, --zstd-level and --runner-node-flags patch the snapshot: drop --no-snapshot");
    }
    return { root: ROOT, startStack: (await import("../runner/dev/stack.ts")).startStack };
  }
  const code = await freezeCode(applyWhatIfs);
  cleanups.push(code.dispose);
  return code;
}

/** The --chunk-avg / --zstd-level experiments: edits to the snapshot, never to the working tree. */
const whatIfs: Record<string, string | number> = {};
function applyWhatIfs(root: string): void {
  const patch = (file: string, pattern: RegExp, replacement: string) => {
    const path = join(root, file);
    const text = readFileSync(path, "utf8");
    if (!pattern.test(text)) throw new Error(`cannot apply the what-if to ${file}: ${pattern} not found`);
    writeFileSync(path, text.replace(pattern, replacement));
  };
  if (args["chunk-avg"]) {
    const avg = parseSize(args["chunk-avg"]).bytes;
    patch("workers/shared/format.ts", /min_size: [^,]+,\s*avg_size: [^,]+,\s*max_size: [^,\n]+,/,
      `min_size: ${avg / 4}, avg_size: ${avg}, max_size: ${avg * 4},`);
    whatIfs.chunk_avg_bytes = avg;
  }
  if (args["zstd-level"]) {
    patch("runner/repository/codec.ts", /export const ZSTD_LEVEL = \d+;/, `export const ZSTD_LEVEL = ${Number(args["zstd-level"])};`);
    whatIfs.zstd_level = Number(args["zstd-level"]);
  }
  if (args["runner-node-flags"] !== undefined) {
    const flags = args["runner-node-flags"].split(/\s+/).filter(Boolean);
    patch("runner/dev/stack.ts", /export const RUNNER_NODE_FLAGS = \[[^\]]*\];/, `export const RUNNER_NODE_FLAGS = ${JSON.stringify(flags)};`);
    whatIfs.runner_node_flags = flags.join(" ");
  }
  if (Object.keys(whatIfs).length > 0) log(`what-if, applied to the snapshot: ${JSON.stringify(whatIfs)}`);
}

function gitState(): { commit: string; dirty_files: number } {
  const git = (...a: string[]) => spawnSync("git", a, { cwd: ROOT, encoding: "utf8" }).stdout?.trim() ?? "";
  return { commit: git("rev-parse", "--short", "HEAD"), dirty_files: git("status", "--porcelain").split("\n").filter(Boolean).length };
}

interface Bench {
  stack: Stack;
  secrets: LocalSecrets;
  dir: string;
  profDir: string | undefined;
  api<T = any>(method: string, path: string, body?: unknown): Promise<T>;
  roleOf(s: { pid: number; comm: string }): string;
}

let stackDir: string | undefined;

/** The end of the stack's logs, for a failure report (the directory is removed afterwards). */
function logTails(): string {
  if (!stackDir) return "";
  return ["runner", "worker"].map((name) => {
    try {
      const text = readFileSync(join(stackDir!, `${name}.log`), "utf8");
      return `--- ${name}.log (end) ---\n${text.split("\n").slice(-30).join("\n")}`;
    } catch {
      return "";
    }
  }).join("\n");
}

async function startBench(sources: { name: string; url: string }[]): Promise<Bench> {
  const secrets = await generateLocalSecrets();
  const dir = mkdtempSync(join(tmpdir(), "astrid-bench-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const profDir = args["cpu-prof"] ? join(dir, "cpu-prof") : undefined;
  // The verification the Worker queues after each backup would overlap the
  // next phase; the bench times a quick verify as a phase of its own instead.
  const vars: Record<string, string> = { ...secrets, BACKUP_DATABASES: sources.map((s) => s.name).join(","), DATABASE_VERIFY_AFTER_BACKUP: "off" };
  for (const s of sources) vars[`DATABASE_URL_${s.name.toUpperCase()}`] = s.url;
  const runnerEnv: Record<string, string> = {};
  for (const pair of args["runner-env"] ?? []) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new Error(`--runner-env wants NAME=VALUE, not ${pair}`);
    runnerEnv[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  if (profDir) {
    runnerEnv.NODE_OPTIONS = `${runnerEnv.NODE_OPTIONS ?? ""} --cpu-prof --cpu-prof-dir=${profDir} --import=${join(ROOT, "bench/support/exit-on-signal.mjs")}`;
  }
  if (args["memory-probe"]) {
    runnerEnv.NODE_OPTIONS = `${runnerEnv.NODE_OPTIONS ?? ""} --import=${join(ROOT, "bench/support/memory-probe.mjs")}`;
    runnerEnv.ASTRID_BENCH_MEMLOG = join(dir, "runner-memory.jsonl");
  }
  const code = await codeUnderTest();
  stackDir = dir;
  log(`starting the stack in ${dir} ...`);
  const stack = await code.startStack({ dir, workerPort: await freePort(), runnerPort: await freePort(), vars, runnerEnv, output: "files" });
  cleanups.push(() => stack.stop());
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(stack.workerUrl + path, {
      method, headers: { authorization: `Bearer ${secrets.ADMIN_TOKEN}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${text.slice(0, 500)}`);
    return text ? JSON.parse(text) : undefined;
  };
  // wrangler dev: a node process (with esbuild) and workerd, which runs the
  // Worker and the local R2/D1/Queues. A workerd that wrangler restarted is
  // counted under "wrangler" (see FOLDED).
  const roleOf = (s: { pid: number; comm: string }) => {
    if (s.pid === process.pid) return "bench (bare tools)";
    if (s.pid === stack.runnerPid()) return "runner";
    return s.comm === "workerd" ? "workerd" : "wrangler";
  };
  return { stack, secrets, dir, profDir, api, roleOf };
}

/** A fresh runner process, so its VmHWM covers one phase only. */
async function freshRunner(b: Bench, env?: Record<string, string>): Promise<number> {
  await b.stack.killRunner("SIGTERM");
  await b.stack.startRunner(env);
  return b.stack.runnerPid()!;
}

/**
 * One job of ours as a measured phase: a fresh runner first (outside the
 * measurement), then submit and poll every POLL_MS until the job settles.
 */
let timelinesSeen = 0;

async function ourJob(b: Bench, label: string, submit: () => Promise<{ job_id: string }>, timeoutMs: number, runnerEnv?: Record<string, string>) {
  const pid = await freshRunner(b, runnerEnv);
  const rss = sampleRss(pid, 50);
  const phase = await measured(label, b.roleOf, async () => {
    const t0 = performance.now();
    const { job_id } = await submit();
    const deadline = Date.now() + timeoutMs;
    let job: any;
    for (;;) {
      job = await b.api("GET", `/jobs/${job_id}`);
      if (job.status === "succeeded" || job.status === "failed") break;
      if (Date.now() > deadline) throw new Error(`job ${job_id} still ${job.status} after ${timeoutMs / 1000} s (progress ${JSON.stringify(job.progress)})`);
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    return { job, wall_ms: Math.round(performance.now() - t0) };
  }).finally(() => void rss.stop());
  const memory: ReturnType<RssSampler["stop"]> & { at_peak?: Record<string, number> } = rss.stop();
  const breakdown = memoryAtPeak(b, pid);
  if (breakdown) {
    memory.at_peak = breakdown;
    log(`runner memory at its RSS peak (MiB): ${Object.entries(breakdown).map(([k, v]) => `${k} ${Math.round(v / MiB)}`).join(", ")}`);
  }
  const { job, wall_ms } = phase.value;
  if (job.status !== "succeeded") throw new Error(`job ${job.id} failed: ${JSON.stringify(job.error)}`);
  // Where the runner's main thread spent the job (runner/database/backup.ts and restore.ts log it).
  await new Promise((r) => setTimeout(r, 500)); // restore's line comes once pg_restore has exited
  const timelines = readFileSync(join(b.dir, "runner.log"), "utf8").split("\n").filter((l) => l.startsWith("timeline:"));
  for (const line of timelines.slice(timelinesSeen)) log(`  ${line}`);
  timelinesSeen = timelines.length;
  const profile = await collectProfile(b, pid);
  return { job, result: job.result, wall_ms, memory, cpu: phase.cpu, machine_busy_pct: phase.machine_busy_pct, load_before: phase.load_before, profile };
}

// ---------------------------------------------------------------- one size

async function benchSize(b: Bench, pg: PgServer, size: Size, source: Awaited<ReturnType<typeof ensureSource>>) {
  const jobTimeout = Math.max(10 * 60_000, (source.bytes / 1024 ** 3) * 20 * 60_000);
  const dumpDir = mkdtempSync(join(tmpdir(), `astrid-bench-dump-${size.label}-`));
  if (!args["keep-dumps"]) cleanups.push(() => rmSync(dumpDir, { recursive: true, force: true }));
  const gzFile = join(dumpDir, "source.Fc.dump");
  const rawFile = join(dumpDir, "source.Fc-Z0.dump");
  const scratch = {
    bare: `bench_dst_${size.label}_bare`, bareZ0: `bench_dst_${size.label}_bare_z0`, ours: `bench_dst_${size.label}_ours`, restic: `bench_dst_${size.label}_restic`,
    bareJ: `bench_dst_${size.label}_bare_j`, oursJ: `bench_dst_${size.label}_ours_j`,
  };
  cleanups.push(async () => {
    for (const db of Object.values(scratch)) await dropDatabase(pg, db);
  });
  const ms = (p: { value: number }) => Math.round(p.value);
  const peak = (m: { peak_rss_sampled_bytes: number; vm_hwm_bytes: number | undefined }) => Math.max(m.peak_rss_sampled_bytes, m.vm_hwm_bytes ?? 0);
  const tool = (label: string, cmd: string, argv: string[], url: string, out?: string) =>
    measured(label, b.roleOf, () => timeTool(cmd, argv, url, out));
  // Phases left out by --no-gzip / --ours-only: NaN times, printed as "skipped".
  const skipped = { value: NaN, wall_ms: NaN, cpu: {} as CpuByRole, machine_busy_pct: NaN, load_before: loadAverage() };
  const gz = !args["no-gzip"] && !args["ours-only"];
  const baselines = !args["ours-only"];
  const maybe = <T,>(run: boolean, fn: () => Promise<T>) => (run ? fn() : Promise.resolve(skipped as unknown as T));

  // Dump files first: the restore baselines need them, and the first pass
  // brings the source into the page cache for everything after it.
  const dumpZ0File = await maybe(baselines, () => tool("pg_dump -Fc -Z0 -f file (warm-up)", "pg_dump", ["-Fc", "-Z0", "-f", rawFile], source.url));
  const dumpFile = await maybe(gz, () => tool("pg_dump -Fc -f file", "pg_dump", ["-Fc", "-f", gzFile], source.url));
  const bareFc = await maybe(gz, () => tool("pg_dump -Fc > /dev/null", "pg_dump", ["-Fc"], source.url));
  const bareZ0 = await maybe(baselines, () => tool("pg_dump -Fc -Z0 > /dev/null", "pg_dump", ["-Fc", "-Z0"], source.url));

  // The peer, on the same database: restic's chunking, zstd and encryption, into a local repository.
  const restic = resticRepo();
  cleanups.push(restic.dispose);
  const pipeline = (label: string, script: string, url: string) =>
    measured(label, b.roleOf, () => timeTool("bash", ["-c", `set -o pipefail; ${script}`], url, "/dev/null", restic.env));
  const resticBackup = await maybe(baselines, () => pipeline("pg_dump -Fc -Z0 | restic backup --stdin", `pg_dump -Fc -Z0 | ${restic.backupCommand}`, source.url));
  const resticStoredBytes = baselines ? restic.bytes() : NaN;
  log(`restic repository after the first backup: ${(resticStoredBytes / MiB).toFixed(0)} MiB`);

  const submitBackup = () => b.api("POST", "/backup/database", { type: "full", database: source.name });
  const backup = await ourJob(b, "our backup", submitBackup, jobTimeout);
  const skippedJob = { wall_ms: NaN, result: { duration_ms: NaN, new_chunk_count: NaN }, memory: { peak_rss_sampled_bytes: NaN, vm_hwm_bytes: NaN }, cpu: {} as CpuByRole, machine_busy_pct: NaN, profile: undefined };
  const rerun = baselines ? await ourJob(b, "our backup again (all chunks deduplicated)", submitBackup, jobTimeout) : skippedJob;
  const verify = baselines ? await ourJob(b, "quick verify of the first backup", () => b.api("POST", `/backups/${backup.result.backup_id}/verify`, { depth: "quick" }), jobTimeout) : skippedJob;

  const restoreArgs = ["--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error"];
  const bareRestore = async (label: string, db: string, file: string, parallelArgs?: string[]) => {
    const url = await createDatabase(pg, db);
    const argv = parallelArgs ? [...restoreArgs.filter((a) => a !== "--single-transaction"), ...parallelArgs] : restoreArgs;
    const phase = await tool(label, "pg_restore", [...argv, "-d", db, file], url);
    await dropDatabase(pg, db);
    return phase;
  };
  const restoreBare = await maybe(gz, () => bareRestore("pg_restore from the -Fc file", scratch.bare, gzFile));
  const restoreBareZ0 = await maybe(baselines, () => bareRestore("pg_restore from the -Fc -Z0 file", scratch.bareZ0, rawFile));
  const resticRestore = await maybe(baselines, async () => {
    const url = await createDatabase(pg, scratch.restic);
    const phase = await pipeline("restic dump | pg_restore", `${restic.dumpCommand} | pg_restore ${restoreArgs.join(" ")} -d ${scratch.restic}`, url);
    await dropDatabase(pg, scratch.restic);
    return phase;
  });

  const oursUrl = await createDatabase(pg, scratch.ours);
  const restore = await ourJob(b, "our restore", () => b.api("POST", `/backups/${backup.result.backup_id}/restore`, { target: oursUrl }), jobTimeout);

  let verified: boolean | undefined;
  if (!args["no-verify"] && baselines) {
    log("verifying: table fingerprints of the restored copy against the source ...");
    const [x, y] = await Promise.all([tableFingerprints(source.url), tableFingerprints(oursUrl)]);
    verified = JSON.stringify(sortKeys(x)) === JSON.stringify(sortKeys(y));
    log(verified ? "restored copy matches the source" : "RESTORED COPY DIFFERS FROM THE SOURCE");
  }
  await dropDatabase(pg, scratch.ours);

  // The parallel restore mode (runner/database/spool.ts) against bare pg_restore -j from a local file.
  let parallel: { jobs: number; bare_ms: number; ours_wall_ms: number; ratio: number; ours_cpu_s: CpuByRole; runner_peak_rss_bytes: number } | undefined;
  if (args["parallel-jobs"]) {
    const jobs = Number(args["parallel-jobs"]);
    const bareJ = await bareRestore(`pg_restore -j ${jobs} from the -Fc -Z0 file (no single transaction)`, scratch.bareJ, rawFile, [`--jobs=${jobs}`]);
    const url = await createDatabase(pg, scratch.oursJ);
    await dropDatabase(pg, scratch.oursJ); // the parallel mode applies to a database the restore creates
    const env = { RESTORE_PARALLEL_JOBS: String(jobs), RESTORE_SPOOL_MAX_BYTES: String(8 * 1024 ** 3), RESTORE_SPOOL_DIR: dumpDir };
    const oursJ = await ourJob(b, `our restore, parallel mode (spool, pg_restore -j ${jobs})`, () => b.api("POST", `/backups/${backup.result.backup_id}/restore`, { target: url }), jobTimeout, env);
    await dropDatabase(pg, scratch.oursJ);
    parallel = { jobs, bare_ms: ms(bareJ), ours_wall_ms: oursJ.wall_ms, ratio: round2(oursJ.wall_ms / bareJ.value), ours_cpu_s: oursJ.cpu, runner_peak_rss_bytes: peak(oursJ.memory) };
  }

  const mibps = (bytes: number, t: number) => Math.round((bytes / MiB / (t / 1000)) * 10) / 10;
  const r = backup.result;
  return {
    size: size.label,
    database: source.name,
    database_bytes: source.bytes,
    ...(source.seeded_ms ? { seeded_ms: source.seeded_ms } : {}),
    dump_file_bytes: { fc: gz ? statSync(gzFile).size : NaN, fc_z0: baselines ? statSync(rawFile).size : NaN },
    backup: {
      bare_pg_dump_fc_ms: ms(bareFc),
      bare_pg_dump_fc_z0_ms: ms(bareZ0),
      bare_pg_dump_fc_to_file_ms: ms(dumpFile),
      bare_pg_dump_fc_z0_to_file_ms: ms(dumpZ0File),
      ours_wall_ms: backup.wall_ms,
      ours_job_duration_ms: r.duration_ms,
      ratio_vs_fc: round2(backup.wall_ms / bareFc.value),
      ratio_vs_fc_z0: round2(backup.wall_ms / bareZ0.value),
      restic_ms: ms(resticBackup),
      ratio_vs_restic: round2(backup.wall_ms / resticBackup.value),
      restic_stored_bytes: resticStoredBytes,
      restic_cpu_s: resticBackup.cpu,
      runner_cpu_s_per_gib: perGib(backup.cpu, "runner", r.logical_bytes),
      worker_cpu_s_per_gib: perGib(backup.cpu, "workerd", r.logical_bytes),
      logical_bytes: r.logical_bytes,
      stored_bytes: r.stored_bytes,
      compression_ratio: round2(r.logical_bytes / r.stored_bytes),
      chunk_count: r.chunk_count,
      new_chunk_count: r.new_chunk_count,
      mib_per_s: mibps(r.logical_bytes, backup.wall_ms),
      runner_peak_rss_bytes: peak(backup.memory),
      runner_rss: backup.memory,
      cpu_s: backup.cpu,
      machine_busy_pct: backup.machine_busy_pct,
      load_before: backup.load_before,
      ...(backup.profile ? { runner_profile: backup.profile } : {}),
    },
    backup_dedup_rerun: {
      ours_wall_ms: rerun.wall_ms,
      ours_job_duration_ms: rerun.result.duration_ms,
      ratio_vs_fc_z0: round2(rerun.wall_ms / bareZ0.value),
      new_chunk_count: rerun.result.new_chunk_count,
      runner_peak_rss_bytes: peak(rerun.memory),
      cpu_s: rerun.cpu,
      machine_busy_pct: rerun.machine_busy_pct,
      ...(rerun.profile ? { runner_profile: rerun.profile } : {}),
    },
    quick_verify: {
      ours_wall_ms: verify.wall_ms,
      ours_job_duration_ms: verify.result?.duration_ms,
      cpu_s: verify.cpu,
      machine_busy_pct: verify.machine_busy_pct,
    },
    restore: {
      bare_pg_restore_fc_ms: ms(restoreBare),
      bare_pg_restore_fc_z0_ms: ms(restoreBareZ0),
      ours_wall_ms: restore.wall_ms,
      ours_job_duration_ms: restore.result.duration_ms,
      ratio_vs_fc: round2(restore.wall_ms / restoreBare.value),
      ratio_vs_fc_z0: round2(restore.wall_ms / restoreBareZ0.value),
      restic_ms: ms(resticRestore),
      ratio_vs_restic: round2(restore.wall_ms / resticRestore.value),
      restic_cpu_s: resticRestore.cpu,
      runner_cpu_s_per_gib: perGib(restore.cpu, "runner", restore.result.bytes),
      worker_cpu_s_per_gib: perGib(restore.cpu, "workerd", restore.result.bytes),
      bytes: restore.result.bytes,
      mib_per_s: mibps(restore.result.bytes, restore.wall_ms),
      runner_peak_rss_bytes: peak(restore.memory),
      runner_rss: restore.memory,
      cpu_s: restore.cpu,
      machine_busy_pct: restore.machine_busy_pct,
      load_before: restore.load_before,
      verified,
      ...(restore.profile ? { runner_profile: restore.profile } : {}),
    },
    ...(parallel ? { restore_parallel: parallel } : {}),
    bare_cpu_s: { pg_dump_fc: bareFc.cpu, pg_dump_fc_z0: bareZ0.cpu, pg_restore_fc: restoreBare.cpu, pg_restore_fc_z0: restoreBareZ0.cpu },
    bare_machine_busy_pct: { pg_dump_fc: bareFc.machine_busy_pct, pg_dump_fc_z0: bareZ0.machine_busy_pct, pg_restore_fc: restoreBare.machine_busy_pct, pg_restore_fc_z0: restoreBareZ0.machine_busy_pct },
  };
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

/** CPU-seconds of one role (its own, not its children's: pg_dump and pg_restore are the runner's children) per GiB. */
function perGib(cpu: CpuByRole, role: string, bytes: number): number {
  return round2((cpu[role] ?? 0) / (bytes / 1024 ** 3));
}

function sortKeys<T>(o: Record<string, T>): [string, T][] {
  return Object.entries(o).sort(([a], [b]) => a.localeCompare(b));
}

/** With --memory-probe: the runner's own memory accounting at the sample with the highest RSS. */
function memoryAtPeak(b: Bench, pid: number): Record<string, number> | undefined {
  if (!args["memory-probe"]) return undefined;
  let best: Record<string, number> | undefined;
  try {
    for (const line of readFileSync(join(b.dir, "runner-memory.jsonl"), "utf8").split("\n")) {
      if (!line) continue;
      const m = JSON.parse(line) as Record<string, number>;
      if (m.pid === pid && (!best || m.rss! > best.rss!)) best = m;
    }
  } catch {
    return undefined;
  }
  if (!best) return undefined;
  const { rss = 0, heapTotal = 0, heapUsed = 0, external = 0, arrayBuffers = 0 } = best;
  // external includes arrayBuffers; what RSS holds beyond the V8 heap and the
  // external memory V8 knows of is native (malloc'd) memory, code and the binary.
  return { rss, heapTotal, heapUsed, external, arrayBuffers, other_native: Math.max(0, rss - heapTotal - external) };
}

/** With --cpu-prof, the runner that ran a phase is stopped so it writes its profile. */
async function collectProfile(b: Bench, pid: number): Promise<ProfileSummary | undefined> {
  if (!b.profDir) return undefined;
  await b.stack.killRunner("SIGTERM");
  const file = readdirSync(b.profDir).find((f) => f.includes(`.${pid}.`) && f.endsWith(".cpuprofile"));
  if (!file) {
    log(`no CPU profile for runner ${pid}`);
    return undefined;
  }
  const summary = summarizeProfileFile(join(b.profDir, file), 12);
  log(`runner ${pid} profile (${file}):\n${formatSummary(summary)}`);
  return summary;
}

// ---------------------------------------------------------------- report

type SizeResult = Awaited<ReturnType<typeof benchSize>>;

function printTable(results: SizeResult[]): void {
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const mib = (n: number | undefined) => (n === undefined ? "?" : `${(n / MiB).toFixed(0)} MiB`);
  const mark = (ok: boolean, value = 0) => (Number.isNaN(value) ? "skipped" : ok ? "ok" : "MISS");
  for (const r of results) {
    const bk = r.backup;
    const rs = r.restore;
    const rssB = bk.runner_peak_rss_bytes;
    const rssR = rs.runner_peak_rss_bytes;
    const rows: [string, string, string][] = [
      ["database", `${r.database} (${mib(r.database_bytes)})`, ""],
      ["bare pg_dump -Fc > /dev/null", s(bk.bare_pg_dump_fc_ms), ""],
      ["bare pg_dump -Fc -Z0 > /dev/null", s(bk.bare_pg_dump_fc_z0_ms), ""],
      ["our backup (wall, API submit -> succeeded)", s(bk.ours_wall_ms), `job duration_ms ${s(bk.ours_job_duration_ms)}`],
      ["  ratio vs pg_dump -Fc", `${bk.ratio_vs_fc.toFixed(2)}x`, `${mark(bk.ratio_vs_fc <= TARGET_RATIO, bk.ratio_vs_fc)} (target <= ${TARGET_RATIO}x)`],
      ["  ratio vs pg_dump -Fc -Z0", `${bk.ratio_vs_fc_z0.toFixed(2)}x`, `${mark(bk.ratio_vs_fc_z0 <= TARGETS.backup_vs_pg_dump_z0, bk.ratio_vs_fc_z0)} (target <= ${TARGETS.backup_vs_pg_dump_z0}x)`],
      ["pg_dump -Fc -Z0 | restic backup --stdin", s(bk.restic_ms), `stored ${mib(bk.restic_stored_bytes)}; cpu ${fmtCpu(bk.restic_cpu_s)}`],
      ["  our backup vs restic", `${bk.ratio_vs_restic.toFixed(2)}x`, `${mark(bk.ratio_vs_restic <= TARGETS.backup_vs_restic, bk.ratio_vs_restic)} (target <= ${TARGETS.backup_vs_restic}x); stored ${mib(bk.stored_bytes)} vs restic ${mib(bk.restic_stored_bytes)}`],
      ["  runner CPU per GiB of dump", `${bk.runner_cpu_s_per_gib} s`, `${mark(bk.runner_cpu_s_per_gib <= TARGETS.runner_cpu_s_per_gib_backup)} (target <= ${TARGETS.runner_cpu_s_per_gib_backup}); Worker (workerd) ${bk.worker_cpu_s_per_gib} s`],
      ["  throughput", `${bk.mib_per_s} MiB/s`, "logical bytes / wall"],
      ["  logical / stored bytes", `${mib(bk.logical_bytes)} / ${mib(bk.stored_bytes)}`, `${bk.compression_ratio}x smaller; pg_dump -Fc file ${mib(r.dump_file_bytes.fc)}`],
      ["  chunks", String(bk.chunk_count), `${bk.new_chunk_count} new`],
      ["  runner peak RSS", mib(rssB), `${mark(rssB <= TARGET_RSS)} (target <= 192 MiB; VmRSS sampled every 50 ms ${mib(bk.runner_rss.peak_rss_sampled_bytes)}, VmHWM ${mib(bk.runner_rss.vm_hwm_bytes)})`],
      ["  CPU during backup", fmtCpu(bk.cpu_s), `machine ${bk.machine_busy_pct}% busy`],
      ["our backup again (all chunks dedup'd)", s(r.backup_dedup_rerun.ours_wall_ms), `${r.backup_dedup_rerun.ratio_vs_fc_z0.toFixed(2)}x vs -Z0; ${r.backup_dedup_rerun.new_chunk_count} new chunks`],
      ["  CPU during rerun", fmtCpu(r.backup_dedup_rerun.cpu_s), `machine ${r.backup_dedup_rerun.machine_busy_pct}% busy`],
      ["quick verify of the backup (informational)", s(r.quick_verify.ours_wall_ms), `machine ${r.quick_verify.machine_busy_pct}% busy; cpu ${fmtCpu(r.quick_verify.cpu_s)}`],
      ["bare pg_restore (-Fc file)", s(rs.bare_pg_restore_fc_ms), ""],
      ["bare pg_restore (-Fc -Z0 file)", s(rs.bare_pg_restore_fc_z0_ms), ""],
      ["our restore (wall, API submit -> succeeded)", s(rs.ours_wall_ms), `job duration_ms ${s(rs.ours_job_duration_ms)}`],
      ["  ratio vs pg_restore (-Fc file)", `${rs.ratio_vs_fc.toFixed(2)}x`, `${mark(rs.ratio_vs_fc <= TARGET_RATIO, rs.ratio_vs_fc)} (target <= ${TARGET_RATIO}x)`],
      ["  ratio vs pg_restore (-Z0 file)", `${rs.ratio_vs_fc_z0.toFixed(2)}x`, `${mark(rs.ratio_vs_fc_z0 <= TARGETS.restore_vs_pg_restore_file, rs.ratio_vs_fc_z0)} (target <= ${TARGETS.restore_vs_pg_restore_file}x)`],
      ["restic dump | pg_restore", s(rs.restic_ms), `cpu ${fmtCpu(rs.restic_cpu_s)}`],
      ["  our restore vs restic", `${rs.ratio_vs_restic.toFixed(2)}x`, `${mark(rs.ratio_vs_restic <= TARGETS.restore_vs_restic, rs.ratio_vs_restic)} (target <= ${TARGETS.restore_vs_restic}x)`],
      ["  runner CPU per GiB of dump", `${rs.runner_cpu_s_per_gib} s`, `${mark(rs.runner_cpu_s_per_gib <= TARGETS.runner_cpu_s_per_gib_restore)} (target <= ${TARGETS.runner_cpu_s_per_gib_restore}); Worker (workerd) ${rs.worker_cpu_s_per_gib} s`],
      ["  throughput", `${rs.mib_per_s} MiB/s`, "dump bytes / wall"],
      ["  runner peak RSS", mib(rssR), `${mark(rssR <= TARGET_RSS)} (target <= 192 MiB; VmRSS sampled every 50 ms ${mib(rs.runner_rss.peak_rss_sampled_bytes)}, VmHWM ${mib(rs.runner_rss.vm_hwm_bytes)})`],
      ["  CPU during restore", fmtCpu(rs.cpu_s), `machine ${rs.machine_busy_pct}% busy`],
      ["  restored copy = source", rs.verified === undefined ? "not checked" : rs.verified ? "yes" : "NO", ""],
      ...(r.restore_parallel ? [
        [`bare pg_restore -j ${r.restore_parallel.jobs} (-Fc -Z0 file)`, s(r.restore_parallel.bare_ms), "no single transaction"],
        [`our restore, parallel mode (-j ${r.restore_parallel.jobs})`, s(r.restore_parallel.ours_wall_ms), `${r.restore_parallel.ratio.toFixed(2)}x the bare -j; ${s(r.restore_parallel.ours_wall_ms)} vs streamed ${s(rs.ours_wall_ms)}; runner peak RSS ${mib(r.restore_parallel.runner_peak_rss_bytes)}; cpu ${fmtCpu(r.restore_parallel.ours_cpu_s)}`],
      ] as [string, string, string][] : []),
    ];
    const w0 = Math.max(...rows.map((x) => x[0].length));
    const w1 = Math.max(...rows.map((x) => x[1].length));
    console.log(`\n== ${r.size} ==`);
    for (const [a, b2, c] of rows) console.log(`${a.padEnd(w0)}  ${b2.padEnd(w1)}  ${c}`.trimEnd());
  }
  if (phasesWithWorkerReload.length > 0) {
    console.log(`note: wrangler dev restarted the Worker (a watched file changed) during: ${phasesWithWorkerReload.join("; ")}`);
  }
  console.log("");
}

// ---------------------------------------------------------------- main

const codeState = gitState();

async function main(): Promise<number> {
  // Wall times on a shared machine are only as good as its load: printed at both ends.
  const loadStart = loadavg();
  log(`load average at start: ${loadStart.join(" ")}`);
  const resticVersion = ensureRestic(log);
  log(resticVersion);
  const pg = await ensurePostgres();
  cleanups.push(() => pg.stop()); // a no-op for the machine's own server
  const sources = [];
  for (const size of sizes) sources.push(await ensureSource(pg, size));
  const b = await startBench(sources);
  const results: SizeResult[] = [];
  for (const [i, size] of sizes.entries()) results.push(await benchSize(b, pg, size, sources[i]!));
  printTable(results);
  const loadEnd = loadavg();
  console.log(`load average: ${loadStart.join(" ")} at start, ${loadEnd.join(" ")} at end (${availableParallelism()} CPUs)`);
  const ok = results.every((r) =>
    r.backup.ratio_vs_restic <= TARGETS.backup_vs_restic && r.backup.ratio_vs_fc_z0 <= TARGETS.backup_vs_pg_dump_z0 &&
    r.restore.ratio_vs_restic <= TARGETS.restore_vs_restic && r.restore.ratio_vs_fc_z0 <= TARGETS.restore_vs_pg_restore_file &&
    r.backup.runner_cpu_s_per_gib <= TARGETS.runner_cpu_s_per_gib_backup && r.restore.runner_cpu_s_per_gib <= TARGETS.runner_cpu_s_per_gib_restore &&
    r.backup.runner_peak_rss_bytes <= TARGET_RSS && r.restore.runner_peak_rss_bytes <= TARGET_RSS &&
    r.restore.verified !== false);
  console.log(JSON.stringify({
    bench: "database", at: new Date().toISOString(), cpus: availableParallelism(), load_average: { start: loadStart, end: loadEnd }, restic: resticVersion,
    code: {
      ...codeState, snapshot: !args["no-snapshot"], ...(Object.keys(whatIfs).length > 0 ? { what_if: whatIfs } : {}),
      ...(args["runner-env"] ? { runner_env: args["runner-env"] } : {}),
    },
    phases_with_worker_reload: phasesWithWorkerReload,
    targets: { ...TARGETS, runner_rss_bytes: TARGET_RSS }, all_targets_met: ok, results,
  }));
  return 0;
}

let code = 1;
try {
  code = await main();
} catch (e) {
  console.error(`bench failed: ${(e as Error).stack ?? e}`);
  console.error(logTails());
} finally {
  await cleanup();
}
process.exit(code);
