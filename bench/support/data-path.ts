// What bench/restore-path.ts and bench/backup-path.ts share: the input (a
// real pg_dump -Fc -Z0, from a file or a database), a repository of local
// files, one measured run in a fresh child process started with the runner's
// node flags and malloc settings (runner/dev/stack.ts), and the interleaved
// runs of this checkout against a baseline checkout, so that before and after
// see the same load on a shared machine.
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { RepositoryClient } from "../../runner/repository/client.ts";
import { RUNNER_MALLOC_ENV, RUNNER_NODE_FLAGS } from "../../runner/dev/stack.ts";
import { ensurePostgres, pgEnv } from "../../runner/dev/postgres.ts";

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

/** The options both benchmarks take (see their headers). */
export function dataPathArgs(defaultWork: string) {
  return parseArgs({
    options: {
      file: { type: "string" }, db: { type: "string" }, mb: { type: "string", default: "256" }, runs: { type: "string", default: "3" },
      semi: { type: "string" }, work: { type: "string", default: defaultWork }, prof: { type: "boolean", default: false },
      baseline: { type: "string" }, child: { type: "string" },
    },
  }).values;
}
export type DataPathArgs = ReturnType<typeof dataPathArgs>;

export const sourceLabel = (args: DataPathArgs) => (args.file ? `file ${args.file}` : `pg_dump -Fc -Z0 ${args.db}`);

/** The first `limit` bytes of the dump: read from --file, or from pg_dump -Fc -Z0 of --db. */
export async function* dumpBytes(args: DataPathArgs, limit: number): AsyncGenerator<Buffer> {
  let source: AsyncIterable<Buffer>;
  let stop = () => {};
  if (args.file) {
    source = (await open(args.file, "r")).createReadStream({ highWaterMark: 65536, end: limit - 1 });
  } else if (args.db) {
    const pg = await ensurePostgres();
    const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("PG"))), ...pgEnv(pg.url(args.db)) };
    const dump = spawn("pg_dump", ["-Fc", "-Z0"], { env, stdio: ["ignore", "pipe", "ignore"] });
    source = dump.stdout;
    stop = () => dump.kill();
  } else {
    throw new Error("give --file <pg_dump -Fc -Z0 output> or --db <database>");
  }
  let n = 0;
  for await (const piece of source) {
    const take = piece.subarray(0, limit - n);
    n += take.length;
    yield take;
    if (n >= limit) break;
  }
  stop();
}

const fileOf = (work: string, key: string) => join(work, "objects", key.replaceAll("/", "_"));

/**
 * A repository of files: put() writes the object (or, with `discard`, only
 * counts it), getRange() reads the range into `into` or a fresh Buffer, as the
 * HTTP client does.
 */
export function fileRepository(work: string, discard = false): RepositoryClient {
  const handles = new Map<string, Promise<FileHandle>>();
  return {
    put: async (key: string, body: Buffer | Buffer[], sha256: string) => {
      if (!discard) writeFileSync(fileOf(work, key), Array.isArray(body) ? Buffer.concat(body) : body); // at once: the writer reuses pack buffers
      return { size: 0, sha256 };
    },
    getRange: async (key: string, offset: number, length: number, into?: Buffer) => {
      let handle = handles.get(key);
      if (!handle) handles.set(key, (handle = open(fileOf(work, key), "r")));
      const out = into && into.length >= length ? into : Buffer.allocUnsafe(length);
      const { bytesRead } = await (await handle).read(out, 0, length, offset);
      return out.subarray(0, bytesRead);
    },
  } as unknown as RepositoryClient;
}

export interface RunResult {
  cpu_s_per_gib: number;
  user_s: number;
  system_s: number;
  wall_s: number;
  peak_rss_mib: number;
  minor_faults: number;
  /** What must come out the same in every setting (e.g. the backup's chunk ids and stored bytes), if the bench checks one. */
  output?: string;
}

export const round = (x: number) => Math.round(x * 100) / 100;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Starts measuring this (child) process; the returned function ends it for `bytes` of dump (all threads: process.cpuUsage). */
export function startMeasuring(): (bytes: number) => RunResult {
  const f0 = process.resourceUsage().minorPageFault;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  return (bytes) => {
    const cpu = process.cpuUsage(c0);
    const wall = (performance.now() - t0) / 1000;
    const usage = process.resourceUsage();
    return {
      cpu_s_per_gib: round(((cpu.user + cpu.system) / 1e6) / (bytes / GiB)),
      user_s: round(cpu.user / 1e6), system_s: round(cpu.system / 1e6), wall_s: round(wall),
      peak_rss_mib: Math.round(usage.maxRSS / 1024), minor_faults: usage.minorPageFault - f0,
    };
  };
}

function runChild(script: string, work: string, flags: string[]): Promise<RunResult> {
  const proc = spawn(process.execPath, [...flags, script, "--child", work], { env: { ...process.env, ...RUNNER_MALLOC_ENV }, stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  proc.stdout.on("data", (d: Buffer) => (out += d));
  return new Promise((resolve, reject) => proc.once("exit", (code) => (code === 0 ? resolve(JSON.parse(out.trim().split("\n").pop()!) as RunResult) : reject(new Error(`run exited ${code}`)))));
}

/**
 * Runs `script --child work` --runs times per setting (this checkout, and the
 * --baseline checkout's copy of the same script; each --semi value), settings
 * interleaved run by run so a change in the machine's load falls on all of
 * them alike; prints each run, the medians, and a JSON summary as the last line.
 */
export async function compareRuns(bench: string, script: string, args: DataPathArgs, input: { bytes: number; chunks: number; source: string }): Promise<void> {
  const work = args.work!;
  const loadavg = () => readFileSync("/proc/loadavg", "utf8").split(" ")[0];
  // Each setting of --semi replaces the runner's --max-semi-space-size; without it, the runner's flags as they are.
  const flagSets = args.semi ? args.semi.split(",").map((s) => [...RUNNER_NODE_FLAGS.filter((f) => !f.startsWith("--max-semi-space-size")), `--max-semi-space-size=${s}`]) : [RUNNER_NODE_FLAGS];
  const scripts = [{ name: "", script }, ...(args.baseline ? [{ name: "baseline ", script: join(args.baseline, "bench", `${bench}.ts`) }] : [])];
  const settings = scripts.flatMap(({ name, script }) => flagSets.map((flags) => ({ label: `${name}${flags.join(" ")}`, script, flags })));
  const summary: { flags: string; runs: RunResult[] }[] = [];
  console.error(`input: ${(input.bytes / MiB).toFixed(0)} MiB of ${input.source}, ${input.chunks} chunks; load ${loadavg()}`);
  const outputs = new Set<string>();
  for (let run = 0; run < Number(args.runs); run++) {
    for (const [i, { label, script, flags }] of settings.entries()) {
      const prof = args.prof ? ["--cpu-prof", `--cpu-prof-dir=${join(work, "profiles")}`] : [];
      const r = await runChild(script, work, [...flags, ...prof]);
      (summary[i] ??= { flags: label, runs: [] }).runs.push(r);
      if (r.output !== undefined) outputs.add(r.output);
      console.error(`${label.padEnd(37)} run ${run + 1}: ${r.cpu_s_per_gib.toFixed(2)} CPU-s/GiB (user ${r.user_s} s, sys ${r.system_s} s), ${r.wall_s} s wall, peak RSS ${r.peak_rss_mib} MiB, ${r.minor_faults ?? "?"} page faults, load ${loadavg()}`);
    }
  }
  for (const s of summary) {
    const cpu = s.runs.map((r) => r.cpu_s_per_gib);
    console.error(`${s.flags.padEnd(37)} median ${median(cpu).toFixed(2)} CPU-s/GiB (min ${Math.min(...cpu).toFixed(2)}, max ${Math.max(...cpu).toFixed(2)}), peak RSS max ${Math.max(...s.runs.map((r) => r.peak_rss_mib))} MiB`);
  }
  if (outputs.size > 1) console.error(`OUTPUTS DIFFER between runs: ${[...outputs].join(" | ")}`);
  else if (outputs.size === 1) console.error(`every run's output: ${[...outputs][0]}`);
  console.log(JSON.stringify({
    bench, input_mib: Math.round(input.bytes / MiB), chunks: input.chunks, same_output: outputs.size <= 1,
    settings: summary.map((s) => ({ flags: s.flags, median_cpu_s_per_gib: median(s.runs.map((r) => r.cpu_s_per_gib)), max_peak_rss_mib: Math.max(...s.runs.map((r) => r.peak_rss_mib)), runs: s.runs })),
  }));
  if (outputs.size > 1) process.exitCode = 1;
}
