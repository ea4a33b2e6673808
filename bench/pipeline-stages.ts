// Micro-benchmark of the runner's per-byte stages, one at a time, on a real
// dump: where does the CPU of a backup or restore go? Single JS thread unless
// the line says otherwise. Uses the runner's own modules.
//
//   npm exec -- node bench/pipeline-stages.ts [--db bench_src_1gb | --file dump] [--mb 512]
//
// With --db it takes `pg_dump -Fc -Z0` of that database (what the runner
// chunks); --mb limits how much of it is used.
import { spawn } from "node:child_process";
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { openSync, readSync, closeSync } from "node:fs";
import { availableParallelism } from "node:os";
import { parseArgs } from "node:util";
import zlib from "node:zlib";
import { promisify } from "node:util";
import { Decrypter, Encrypter } from "age-encryption";
import { chunkStream } from "../runner/repository/chunker.ts";
import { chunkId, chunkOpener, sealChunk, sha256Hex, ZSTD_LEVEL } from "../runner/repository/codec.ts";
import { ageKeyPair } from "../runner/dev/secrets.ts";
import { ensurePostgres, pgEnv } from "../runner/dev/postgres.ts";

const MiB = 1024 * 1024;
const { values: args } = parseArgs({ options: { db: { type: "string" }, file: { type: "string" }, mb: { type: "string", default: "512" } } });
const limit = Number(args.mb) * MiB;

async function loadInput(): Promise<Buffer> {
  if (args.file) {
    const fd = openSync(args.file, "r");
    const buf = Buffer.allocUnsafe(limit);
    let n = 0;
    for (;;) {
      const r = readSync(fd, buf, n, limit - n, null);
      if (r === 0 || n + r >= limit) {
        n += r;
        break;
      }
      n += r;
    }
    closeSync(fd);
    return buf.subarray(0, n);
  }
  const pg = await ensurePostgres();
  const url = pg.url(args.db ?? "bench_src_1gb");
  const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("PG"))), ...pgEnv(url) };
  const dump = spawn("pg_dump", ["-Fc", "-Z0"], { env, stdio: ["ignore", "pipe", "inherit"] });
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

const results: { stage: string; mib_s: number; note?: string }[] = [];

async function time(stage: string, bytes: number, fn: () => unknown | Promise<unknown>, note?: string): Promise<void> {
  await fn(); // warm-up on the same data would double the run: measure once, after a short warm-up instead
  const t0 = performance.now();
  await fn();
  const s = (performance.now() - t0) / 1000;
  const mib_s = Math.round((bytes / MiB / s) * 10) / 10;
  results.push({ stage, mib_s, ...(note ? { note } : {}) });
  console.error(`${stage.padEnd(58)} ${String(mib_s).padStart(8)} MiB/s${note ? `  (${note})` : ""}`);
}

/** Runs fn over items with at most `limit` in flight, like ChunkWriter does. */
async function pool<T>(items: T[], limit: number, fn: (x: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

const input = await loadInput();
const bytes = input.length;
console.error(`input: ${(bytes / MiB).toFixed(0)} MiB of pg_dump -Fc -Z0 output; ${availableParallelism()} CPUs; load ${(await import("node:fs")).readFileSync("/proc/loadavg", "utf8").split(" ")[0]}`);

// Pipe-sized pieces, as the runner reads pg_dump's stdout (64 KiB).
const pieces: Buffer[] = [];
for (let i = 0; i < bytes; i += 65536) pieces.push(input.subarray(i, i + 65536));
async function* fromPieces() {
  for (const p of pieces) yield p;
}

let chunks: Buffer[] = [];
await time("chunkStream (FastCDC gear, 64 KiB reads)", bytes, async () => {
  chunks = [];
  for await (const c of chunkStream(fromPieces())) chunks.push(c);
});
console.error(`  -> ${chunks.length} chunks, mean ${(bytes / chunks.length / MiB).toFixed(2)} MiB`);

const idKey = randomBytes(32);
await time("HMAC-SHA256 chunk id", bytes, () => chunks.forEach((c) => chunkId(idKey, c)));
await time("SHA-256 (dump hash / stored hash)", bytes, () => chunks.forEach((c) => sha256Hex(c)));

const level = { params: { [zlib.constants.ZSTD_c_compressionLevel]: ZSTD_LEVEL } };
let compressed: Buffer[] = [];
await time(`zstd -${ZSTD_LEVEL} compress, sync`, bytes, () => (compressed = chunks.map((c) => zlib.zstdCompressSync(c, level))));
const compressedBytes = compressed.reduce((a, c) => a + c.length, 0);
console.error(`  -> ${(compressedBytes / MiB).toFixed(0)} MiB (${(bytes / compressedBytes).toFixed(2)}x)`);
const zstdAsync = promisify(zlib.zstdCompress);
await time(`zstd -${ZSTD_LEVEL} compress, async x4 (libuv pool)`, bytes, () => pool(chunks, 4, (c) => zstdAsync(c, level)));
await time("zstd decompress, sync", bytes, () => compressed.forEach((c) => zlib.zstdDecompressSync(c)));

const { identity, recipient } = await ageKeyPair();
let sealedAge: Uint8Array[] = [];
await time("age encrypt (age-encryption / @noble, JS) of zstd output", bytes, async () => {
  sealedAge = [];
  for (const c of compressed) {
    const e = new Encrypter();
    e.addRecipient(recipient);
    sealedAge.push(await e.encrypt(c));
  }
}, `${(compressedBytes / MiB).toFixed(0)} MiB ciphertext; rate per plaintext MiB`);
await time("age encrypt x4 concurrent (same JS thread)", bytes, () => pool(compressed, 4, async (c) => {
  const e = new Encrypter();
  e.addRecipient(recipient);
  await e.encrypt(c);
}));
const dec = new Decrypter();
dec.addIdentity(identity);
await time("age decrypt (JS) of stored chunks", bytes, async () => {
  for (const s of sealedAge) await dec.decrypt(s);
});

// What age's payload STREAM (ChaCha20-Poly1305 per 64 KiB) costs with
// OpenSSL instead of JS: the same work a native implementation would do.
function nativeStream(data: Buffer, key: Buffer): Buffer[] {
  const out: Buffer[] = [];
  const nonce = Buffer.alloc(12);
  for (let off = 0, n = 0; off < data.length || n === 0; off += 65536, n++) {
    nonce.writeUIntBE(n, 5, 6);
    nonce[11] = off + 65536 >= data.length ? 1 : 0;
    const c = createCipheriv("chacha20-poly1305", key, nonce, { authTagLength: 16 });
    out.push(c.update(data.subarray(off, off + 65536)), c.final(), c.getAuthTag());
  }
  return out;
}
const streamKey = randomBytes(32);
await time("ChaCha20-Poly1305 STREAM via node:crypto (OpenSSL)", bytes, () => compressed.forEach((c) => nativeStream(c, streamKey)),
  "same payload encryption as age, native");
await time("ChaCha20-Poly1305 decrypt via node:crypto (OpenSSL)", bytes, () => compressed.forEach((c) => {
  const nonce = Buffer.alloc(12);
  for (let off = 0, n = 0; off < c.length || n === 0; off += 65536, n++) {
    nonce.writeUIntBE(n, 5, 6);
    const d = createDecipheriv("chacha20-poly1305", streamKey, nonce, { authTagLength: 16 });
    d.update(c.subarray(off, off + 65536));
  }
}), "auth tag check omitted: same cipher work");

await time("sealChunk end to end (zstd async + age JS), x4 like ChunkWriter", bytes, () => pool(chunks, 4, (c) => sealChunk(c, [recipient])));
const open = chunkOpener([identity]);
await time("chunkOpener end to end (age JS + zstd async), sequential", bytes, async () => {
  for (const s of sealedAge) await open(s);
});
await time("chunkOpener x4 (like readChunks prefetch)", bytes, () => pool(sealedAge, 4, (s) => open(s)));

console.log(JSON.stringify({ bench: "pipeline-stages", input_mib: Math.round(bytes / MiB), chunks: chunks.length, compressed_mib: Math.round(compressedBytes / MiB), results }));
process.exit(0);
