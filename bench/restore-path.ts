// The restore path's per-byte work, end to end and in-process, measured the
// way it runs in the runner: CPU seconds per GiB of dump (process.cpuUsage,
// all threads of the process) and peak RSS, in a fresh Node process started
// with the runner's flags and malloc settings (runner/dev/stack.ts).
//
//   npm exec -- node bench/restore-path.ts [--file dump | --db name] [--mb 256] [--runs 3] [--semi 1,2,4] [--baseline dir] [--prof]
//
// Once per input the dump's first --mb MiB are chunked and sealed by the real
// ChunkWriter into packs on local disk (--work, kept between runs). Each run
// then restores them in a child process: dumpStream (range reads of packs,
// per-chunk-file SHA-256, age open, zstd, keyed-id HMAC check, whole-dump
// SHA-256) fed by feed() into a child `cat` writing to /dev/null, as
// restore.ts feeds pg_restore. Range reads come from files instead of the
// repository endpoint, into the caller's buffer or a fresh one as http.ts does,
// but the HTTP client's own cost (~0.26 CPU-s/GiB, see http.ts) is not in it.
// Several runs per setting, since the machine may be busy: compare medians
// (and minimums) of runs made under the same conditions. --baseline names
// another checkout (say `git archive <commit> | tar -x -C dir`, with a
// node_modules link) whose copy of this script runs the same packs,
// interleaved with this one's runs: a before/after in the same conditions.
// The last line is JSON.
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { CHUNKER, SHARED_PACK_PREFIX, type ChunkRef } from "../workers/shared/format.ts";
import { chunkStream } from "../runner/repository/chunker.ts";
import { ChunkWriter } from "../runner/repository/chunk-writer.ts";
import { ChunkTable } from "../runner/repository/chunk-table.ts";
import type { RepositoryClient } from "../runner/repository/client.ts";
import { dumpStream } from "../runner/database/plaintext.ts";
import { feed } from "../runner/database/feed.ts";
import { ageKeyPair } from "../runner/dev/secrets.ts";
import { RUNNER_MALLOC_ENV, RUNNER_NODE_FLAGS } from "../runner/dev/stack.ts";
import { ensurePostgres, pgEnv } from "../runner/dev/postgres.ts";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const { values: args } = parseArgs({
  options: {
    file: { type: "string" }, db: { type: "string" }, mb: { type: "string", default: "256" }, runs: { type: "string", default: "3" },
    semi: { type: "string" }, work: { type: "string", default: join(tmpdir(), "astrid-restore-path") }, prof: { type: "boolean", default: false },
    baseline: { type: "string" }, child: { type: "string" },
  },
});

/** What prepare() leaves in the work directory for the runs. */
interface Prepared {
  source: string;
  bytes: number;
  sha256: string;
  identity: string;
  chunk_id_key: string;
  chunker: typeof CHUNKER;
  chunks: ChunkRef[];
}

const fileOf = (work: string, key: string) => join(work, "objects", key.replaceAll("/", "_"));

/** A repository of files: put() writes the object, getRange() reads the range into `into` or a fresh Buffer, as the HTTP client does. */
function fileRepository(work: string): RepositoryClient {
  const handles = new Map<string, Promise<FileHandle>>();
  return {
    put: async (key: string, body: Buffer | Buffer[], sha256: string) => {
      writeFileSync(fileOf(work, key), Array.isArray(body) ? Buffer.concat(body) : body); // at once: the writer reuses pack buffers
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

async function* dumpBytes(limit: number): AsyncGenerator<Buffer> {
  let source: AsyncIterable<Buffer>;
  let stop = () => {};
  if (args.file) {
    source = (await open(args.file, "r")).createReadStream({ highWaterMark: 65536, end: limit - 1 });
  } else {
    const pg = await ensurePostgres();
    const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("PG"))), ...pgEnv(pg.url(args.db!)) };
    const dump = spawn("pg_dump", ["-Fc", "-Z0"], { env, stdio: ["ignore", "pipe", "ignore"] });
    source = dump.stdout;
    stop = () => dump.kill();
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

/** Chunks and seals the input into packs in `work` (once: reused while source and size match). */
async function prepare(work: string, limit: number): Promise<Prepared> {
  const source = args.file ? `file ${args.file}` : `pg_dump -Fc -Z0 ${args.db}`;
  const meta = join(work, "prepared.json");
  if (existsSync(meta)) {
    const p = JSON.parse(readFileSync(meta, "utf8")) as Prepared & { limit: number };
    if (p.source === source && p.limit === limit && JSON.stringify(p.chunker) === JSON.stringify(CHUNKER)) return p;
  }
  rmSync(work, { recursive: true, force: true });
  mkdirSync(join(work, "objects"), { recursive: true });
  console.error(`preparing: chunking and sealing ${limit / MiB} MiB of ${source} into ${work} ...`);
  const { identity, recipient } = await ageKeyPair();
  const chunkIdKey = randomBytes(32).toString("hex");
  const writer = new ChunkWriter(fileRepository(work), SHARED_PACK_PREFIX, [recipient], chunkIdKey);
  const hash = createHash("sha256");
  let bytes = 0;
  for await (const chunk of chunkStream(dumpBytes(limit))) {
    hash.update(chunk);
    bytes += chunk.length;
    await writer.add(chunk);
  }
  const chunks = await writer.finish();
  const p: Prepared = { source, bytes, sha256: hash.digest("hex"), identity, chunk_id_key: chunkIdKey, chunker: CHUNKER, chunks };
  writeFileSync(meta, JSON.stringify({ ...p, limit }));
  console.error(`prepared: ${chunks.length} chunks, ${(writer.stats.stored_bytes / MiB).toFixed(0)} MiB stored`);
  return p;
}

interface RunResult {
  cpu_s_per_gib: number;
  user_s: number;
  system_s: number;
  wall_s: number;
  peak_rss_mib: number;
  minor_faults: number;
}

/** One restore of the prepared packs, in this (child) process. */
async function child(work: string): Promise<void> {
  const p = JSON.parse(readFileSync(join(work, "prepared.json"), "utf8")) as Prepared;
  const manifest = { pack_prefix: SHARED_PACK_PREFIX, chunks: ChunkTable.from(p.chunks), dump: { sha256: p.sha256 } };
  p.chunks = [];
  const sink = spawn("cat", [], { stdio: ["pipe", "ignore", "inherit"] });
  const exited = new Promise<number | null>((resolve) => sink.once("exit", resolve));
  let got = 0;
  const f0 = process.resourceUsage().minorPageFault;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const dump = dumpStream(fileRepository(work), manifest, [p.identity], (n) => (got = n), p.chunk_id_key);
  await feed(sink, dump, false, (piece) => dump.release(piece)); // as restore.ts feeds pg_restore
  const cpu = process.cpuUsage(c0);
  const wall = (performance.now() - t0) / 1000;
  if ((await exited) !== 0 || got !== p.bytes) throw new Error(`restored ${got} of ${p.bytes} bytes`);
  const r: RunResult = {
    cpu_s_per_gib: round(((cpu.user + cpu.system) / 1e6) / (p.bytes / GiB)),
    user_s: round(cpu.user / 1e6), system_s: round(cpu.system / 1e6), wall_s: round(wall),
    peak_rss_mib: Math.round(process.resourceUsage().maxRSS / 1024), minor_faults: process.resourceUsage().minorPageFault - f0,
  };
  console.log(JSON.stringify(r));
}

const round = (x: number) => Math.round(x * 100) / 100;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function runChild(script: string, work: string, flags: string[]): Promise<RunResult> {
  const proc = spawn(process.execPath, [...flags, script, "--child", work], { env: { ...process.env, ...RUNNER_MALLOC_ENV }, stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  proc.stdout.on("data", (d: Buffer) => (out += d));
  return new Promise((resolve, reject) => proc.once("exit", (code) => (code === 0 ? resolve(JSON.parse(out.trim().split("\n").pop()!) as RunResult) : reject(new Error(`run exited ${code}`)))));
}

if (args.child) {
  await child(args.child);
} else {
  if (!args.file && !args.db) throw new Error("give --file <pg_dump -Fc -Z0 output> or --db <database>");
  const work = args.work!;
  const p = await prepare(work, Number(args.mb) * MiB);
  const loadavg = () => readFileSync("/proc/loadavg", "utf8").split(" ")[0];
  // Each setting of --semi replaces the runner's --max-semi-space-size; without it, the runner's flags as they are.
  const flagSets = args.semi ? args.semi.split(",").map((s) => [...RUNNER_NODE_FLAGS.filter((f) => !f.startsWith("--max-semi-space-size")), `--max-semi-space-size=${s}`]) : [RUNNER_NODE_FLAGS];
  const scripts = [{ name: "", script: fileURLToPath(import.meta.url) }, ...(args.baseline ? [{ name: "baseline ", script: join(args.baseline, "bench/restore-path.ts") }] : [])];
  const settings = scripts.flatMap(({ name, script }) => flagSets.map((flags) => ({ label: `${name}${flags.join(" ")}`, script, flags })));
  const summary: { flags: string; runs: RunResult[] }[] = [];
  console.error(`input: ${(p.bytes / MiB).toFixed(0)} MiB of ${p.source}, ${p.chunks.length} chunks; load ${loadavg()}`);
  for (let run = 0; run < Number(args.runs); run++) {
    // Settings interleaved run by run, so a change in the machine's load falls on all of them alike.
    for (const [i, { label, script, flags }] of settings.entries()) {
      const prof = args.prof ? ["--cpu-prof", `--cpu-prof-dir=${join(work, "profiles")}`] : [];
      const r = await runChild(script, work, [...flags, ...prof]);
      (summary[i] ??= { flags: label, runs: [] }).runs.push(r);
      console.error(`${label.padEnd(37)} run ${run + 1}: ${r.cpu_s_per_gib.toFixed(2)} CPU-s/GiB (user ${r.user_s} s, sys ${r.system_s} s), ${r.wall_s} s wall, peak RSS ${r.peak_rss_mib} MiB, ${r.minor_faults ?? "?"} page faults, load ${loadavg()}`);
    }
  }
  for (const s of summary) {
    const cpu = s.runs.map((r) => r.cpu_s_per_gib);
    console.error(`${s.flags.padEnd(37)} median ${median(cpu).toFixed(2)} CPU-s/GiB (min ${Math.min(...cpu).toFixed(2)}, max ${Math.max(...cpu).toFixed(2)}), peak RSS max ${Math.max(...s.runs.map((r) => r.peak_rss_mib))} MiB`);
  }
  console.log(JSON.stringify({
    bench: "restore-path", input_mib: Math.round(p.bytes / MiB), chunks: p.chunks.length,
    settings: summary.map((s) => ({ flags: s.flags, median_cpu_s_per_gib: median(s.runs.map((r) => r.cpu_s_per_gib)), max_peak_rss_mib: Math.max(...s.runs.map((r) => r.peak_rss_mib)), runs: s.runs })),
  }));
}
