// Micro-benchmark of the runner's per-byte stages, one at a time, on a real
// dump: where does the CPU of a backup or restore go? For each stage: wall
// throughput, and CPU seconds per GiB of dump (all threads of this process,
// so libuv's zstd work counts), which is what matters on a 2-core runner.
// Uses the runner's own modules and the current chunker parameters.
//
//   npm exec -- node bench/pipeline-stages.ts [--db bench_src_1gb | --file dump] [--mb 256]
//
// With --db it reads `pg_dump -Fc -Z0` of that database (what the runner
// chunks); --mb limits how much of it is used. The last line is JSON.
import { spawn } from "node:child_process";
import { forEachLimited } from "../workers/shared/concurrency.ts";
import { createCipheriv, randomBytes } from "node:crypto";
import { closeSync, openSync, readFileSync, readSync } from "node:fs";
import { availableParallelism } from "node:os";
import { parseArgs, promisify } from "node:util";
import zlib from "node:zlib";
import { Encrypter } from "age-encryption";
import { CHUNKER } from "../workers/shared/format.ts";
import { chunkStream } from "../runner/repository/chunker.ts";
import { AgeSealer, ChunkSealer, chunkId, chunkOpener, sha256Hex, ZSTD_LEVEL } from "../runner/repository/codec.ts";
import { FrameCompressor, FrameDecompressor } from "../runner/repository/zstd.ts";
import { ageKeyPair } from "../runner/dev/secrets.ts";
import { ensurePostgres, pgEnv } from "../runner/dev/postgres.ts";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const { values: args } = parseArgs({ options: { db: { type: "string" }, file: { type: "string" }, mb: { type: "string", default: "256" } } });
const limit = Number(args.mb) * MiB;

async function loadInput(): Promise<Buffer> {
  if (args.file) {
    const fd = openSync(args.file, "r");
    const buf = Buffer.allocUnsafe(limit);
    let n = 0;
    for (let r = 1; r > 0 && n < limit; n += r) r = readSync(fd, buf, n, limit - n, null);
    closeSync(fd);
    return buf.subarray(0, n);
  }
  const pg = await ensurePostgres();
  const url = pg.url(args.db ?? "bench_src_1gb");
  const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("PG"))), ...pgEnv(url) };
  const dump = spawn("pg_dump", ["-Fc", "-Z0"], { env, stdio: ["ignore", "pipe", "ignore"] });
  const parts: Buffer[] = [];
  let n = 0;
  for await (const part of dump.stdout) {
    parts.push(part as Buffer);
    n += (part as Buffer).length;
    if (n >= limit) break;
  }
  dump.kill();
  return Buffer.concat(parts).subarray(0, limit);
}

interface StageResult {
  stage: string;
  mib_s: number;
  cpu_s_per_gib: number;
  rss_growth_mib: number;
  note?: string;
}
const results: StageResult[] = [];

/** Runs fn once and reports wall throughput, process CPU per GiB and peak RSS growth. */
async function time(stage: string, bytes: number, fn: () => unknown | Promise<unknown>, note?: string): Promise<void> {
  (globalThis as { gc?: () => void }).gc?.();
  const rss0 = process.memoryUsage.rss();
  let peak = rss0;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  const s = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(c0);
  clearInterval(sampler);
  peak = Math.max(peak, process.memoryUsage.rss());
  const r: StageResult = {
    stage,
    mib_s: Math.round((bytes / MiB / s) * 10) / 10,
    cpu_s_per_gib: Math.round(((cpu.user + cpu.system) / 1e6 / (bytes / GiB)) * 100) / 100,
    rss_growth_mib: Math.round((peak - rss0) / MiB),
    ...(note ? { note } : {}),
  };
  results.push(r);
  console.error(`${stage.padEnd(62)} ${String(r.mib_s).padStart(7)} MiB/s ${String(r.cpu_s_per_gib).padStart(6)} CPU-s/GiB  +${r.rss_growth_mib} MiB RSS${note ? `  (${note})` : ""}`);
}


const input = await loadInput();
const bytes = input.length;
console.error(`input: ${(bytes / MiB).toFixed(0)} MiB of pg_dump -Fc -Z0; chunker avg ${CHUNKER.avg_size / 1024} KiB; ${availableParallelism()} CPUs; load ${readFileSync("/proc/loadavg", "utf8").split(" ")[0]}`);

// Pipe-sized pieces, as the runner reads pg_dump's stdout (64 KiB).
const pieces: Buffer[] = [];
for (let i = 0; i < bytes; i += 65536) pieces.push(input.subarray(i, i + 65536));
async function* fromPieces() {
  for (const p of pieces) yield p;
}

let chunks: Buffer[] = [];
await time("chunkStream (FastCDC, 64 KiB reads)", bytes, async () => {
  chunks = [];
  for await (const c of chunkStream(fromPieces())) chunks.push(c);
});
console.error(`  -> ${chunks.length} chunks, mean ${(bytes / chunks.length / 1024).toFixed(0)} KiB (${Math.round((chunks.length * GiB) / bytes)} per GiB)`);
const oneMiB: Buffer[] = [];
for (let i = 0; i < bytes; i += MiB) oneMiB.push(input.subarray(i, i + MiB));

const idKey = randomBytes(32);
await time("HMAC-SHA256 chunk ids", bytes, () => chunks.forEach((c) => chunkId(idKey, c)));
await time("SHA-256", bytes, () => chunks.forEach((c) => sha256Hex(c)));

const level = (l: number) => ({ params: { [zlib.constants.ZSTD_c_compressionLevel]: l } });
const zstdAsync = promisify(zlib.zstdCompress);
let compressed: Buffer[] = [];
await time(`zstd -${ZSTD_LEVEL}, zstdCompressSync per chunk`, bytes, () => (compressed = chunks.map((c) => zlib.zstdCompressSync(c, level(ZSTD_LEVEL)))));
const compressedBytes = compressed.reduce((a, c) => a + c.length, 0);
console.error(`  -> ${(compressedBytes / MiB).toFixed(0)} MiB (${(bytes / compressedBytes).toFixed(2)}x)`);
await time(`zstd -${ZSTD_LEVEL}, zstdCompress (async) per chunk, 8 in flight`, bytes, () => forEachLimited(chunks, 8, (c) => zstdAsync(c, level(ZSTD_LEVEL))), "as ChunkWriter does");
await time(`zstd -${ZSTD_LEVEL}, async per 1 MiB piece, 8 in flight`, bytes, () => forEachLimited(oneMiB, 8, (c) => zstdAsync(c, level(ZSTD_LEVEL))), "per-call overhead at 1 MiB");

/** One long-lived compressor; ZSTD_e_end after each chunk closes a complete frame. */
function reusableCompressor(l: number) {
  const z = zlib.createZstdCompress(level(l));
  const out: Buffer[] = [];
  z.on("data", (d: Buffer) => out.push(d));
  return (chunk: Buffer) => new Promise<Buffer>((resolve) => {
    z.write(chunk);
    z.flush(zlib.constants.ZSTD_e_end, () => resolve(Buffer.concat(out.splice(0))));
  });
}
{
  const check = reusableCompressor(ZSTD_LEVEL);
  const frame = await check(chunks[1]!);
  if (!zlib.zstdDecompressSync(frame).equals(chunks[1]!)) throw new Error("reused-context frame does not round-trip");
}
const reused = [reusableCompressor(ZSTD_LEVEL), reusableCompressor(ZSTD_LEVEL)];
await time(`zstd -${ZSTD_LEVEL}, 2 reused contexts (flush ZSTD_e_end per chunk)`, bytes, async () => {
  let next = 0;
  await Promise.all(reused.map(async (z) => {
    while (next < chunks.length) await z(chunks[next++]!);
  }));
}, "one frame per chunk, no per-chunk context");
for (const l of [1, 3]) {
  const z = new FrameCompressor(l);
  let n = 0;
  await time(`zstd -${l}, one reused context (runner/repository/zstd.ts)`, bytes, () => chunks.forEach((c) => (n += z.compress(c).length)), "what the runner does");
  console.error(`  -> ${(bytes / n).toFixed(2)}x`);
}
let level1Bytes = 0;
await time("zstd -1, zstdCompressSync per chunk", bytes, () => (level1Bytes = chunks.reduce((n, c) => n + zlib.zstdCompressSync(c, level(1)).length, 0)));
console.error(`  -> ${(level1Bytes / MiB).toFixed(0)} MiB (${(bytes / level1Bytes).toFixed(2)}x; level ${ZSTD_LEVEL}: ${(bytes / compressedBytes).toFixed(2)}x)`);

const zstdDecompressAsync = promisify(zlib.zstdDecompress);
await time("zstd decompress, sync per chunk", bytes, () => compressed.forEach((c) => zlib.zstdDecompressSync(c)));
{
  const d = new FrameDecompressor();
  await time("zstd decompress, one reused context (runner/repository/zstd.ts)", bytes, () => compressed.forEach((c, i) => d.decompress(c, chunks[i]!.length)), "what the runner does");
}
await time("zstd decompress, async per chunk, 4 in flight", bytes, () => forEachLimited(compressed, 4, (c) => zstdDecompressAsync(c)), "as restore does");
await time("zstd decompress, one stream over all frames", bytes, async () => {
  const d = zlib.createZstdDecompress();
  const done = new Promise<void>((resolve, reject) => d.on("end", resolve).on("error", reject));
  d.on("data", () => {});
  for (const c of compressed) if (!d.write(c)) await new Promise((r) => d.once("drain", r));
  d.end();
  await done;
}, "frames concatenated, as a restore could feed them");

const { identity, recipient } = await ageKeyPair();
const sealer = new AgeSealer([recipient]);
let sealed: Buffer[] = [];
await time("age seal of zstd output (runner codec, node:crypto)", bytes, () => (sealed = compressed.map((c) => sealer.seal(c))), "per plaintext byte");
await time("age seal of zstd output (age-encryption package, JS)", bytes, async () => {
  for (const c of compressed.slice(0, Math.ceil(compressed.length / 8))) {
    const e = new Encrypter();
    e.addRecipient(recipient);
    await e.encrypt(c);
  }
}, "on 1/8 of the chunks; scaled below");
// Fix up the sampled stage above to the full-size equivalent.
{
  const r = results[results.length - 1]!;
  r.mib_s = Math.round((r.mib_s / 8) * 10) / 10;
  r.cpu_s_per_gib = Math.round(r.cpu_s_per_gib * 8 * 100) / 100;
  r.note = "measured on 1/8 of the chunks, scaled";
  console.error(`  -> scaled: ${r.mib_s} MiB/s, ${r.cpu_s_per_gib} CPU-s/GiB`);
}
const streamKey = randomBytes(32);
await time("bare ChaCha20-Poly1305 (node:crypto) over zstd output", bytes, () => compressed.forEach((c) => {
  const cipher = createCipheriv("chacha20-poly1305", streamKey, randomBytes(12), { authTagLength: 16 });
  cipher.update(c);
  cipher.final();
}), "the cipher's floor");

const open = chunkOpener([identity]);
await time("chunkOpener (runner codec: age open + zstd)", bytes, () => sealed.forEach((s, i) => open(s, chunks[i]!.length)), "as restore does");
const chunkSealer = new ChunkSealer([recipient]);
await time(`ChunkSealer (runner codec: zstd -${ZSTD_LEVEL} + age)`, bytes, () => chunks.forEach((c) => chunkSealer.seal(c)), "as ChunkWriter does (it seals into the pack buffer)");

console.log(JSON.stringify({
  bench: "pipeline-stages", input_mib: Math.round(bytes / MiB), chunker_avg: CHUNKER.avg_size, chunks: chunks.length,
  compressed_mib: Math.round(compressedBytes / MiB), compressed_level1_mib: Math.round(level1Bytes / MiB), results,
}));
process.exit(0);
