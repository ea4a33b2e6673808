// Picks the chunk size by measurement (issue #4): dumps an astronomy database,
// applies a change, dumps again, and reports for several average chunk sizes
// how many stored bytes the second backup adds, as a share of the first's.
//   npm exec -- node bench/chunk-size.ts [--size 300MB] [--change astronomy|random]
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { createReadStream, mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import zlib from "node:zlib";
import { appendObservations, seedAstronomyDatabase, updateObservations } from "../runner/dev/astronomy-seed.ts";
import { createDatabase, dropDatabase, ensurePostgres, psql } from "../runner/dev/postgres.ts";
import { toolEnv } from "../runner/database/pg-tools.ts";
import { chunkStream } from "../runner/repository/chunker.ts";

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : fallback;
};
const size = parseSize(arg("size", "300MB"));
const change = arg("change", "astronomy") as "astronomy" | "random";
const AVERAGES = [32, 64, 128, 256, 512, 1024].map((k) => k * 1024);

function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(MB|GB)$/i.exec(text);
  if (!m) throw new Error(`size like 300MB or 1GB, not ${text}`);
  return Number(m[1]) * (m[2]!.toUpperCase() === "GB" ? 1024 ** 3 : 1024 ** 2);
}

async function dump(url: string, file: string) {
  const child = spawn("pg_dump", ["--format=custom", "--compress=0"], { env: toolEnv(url), stdio: ["ignore", openSync(file, "w"), "inherit"] });
  await new Promise((r, j) => child.once("exit", (c) => (c === 0 ? r(c) : j(new Error(`pg_dump ${c}`)))));
}

/** chunk id -> compressed size, for one dump at one average size. */
async function chunkSet(file: string, avg: number) {
  const set = new Map<string, number>();
  const params = { min_size: avg / 4, avg_size: avg, max_size: avg * 4 };
  for await (const c of chunkStream(createReadStream(file, { highWaterMark: 1 << 20 }), params)) {
    const id = createHmac("sha256", "k").update(c).digest("hex");
    if (!set.has(id)) set.set(id, zlib.zstdCompressSync(c, { params: { [zlib.constants.ZSTD_c_compressionLevel]: 3 } }).length);
  }
  return set;
}

const pg = await ensurePostgres();
const name = `bench_chunk_${change}`;
const url = await createDatabase(pg, name);
const dir = mkdtempSync(join(tmpdir(), "astrid-chunk-"));
try {
  await seedAstronomyDatabase(url, { targetBytes: size });
  await dump(url, join(dir, "a.dump"));
  if (change === "astronomy") {
    await appendObservations(url, 0.01);
    await updateObservations(url, 0.01, "newest");
    // 100 scattered updates to old rows
    await psql(url, `UPDATE observations SET magnitude = magnitude + 0.001
      WHERE id IN (SELECT min(id) + (max(id) - min(id)) * g / 200 FROM observations, generate_series(1, 100) g GROUP BY g)`);
  } else {
    await updateObservations(url, 0.01, "random");
  }
  await dump(url, join(dir, "b.dump"));
  console.log(`database ${(size / 2 ** 20).toFixed(0)} MiB, change: ${change}`);
  console.log("avg chunk  chunks(full)  stored(full) MiB  new(incr) MiB  new/full");
  for (const avg of AVERAGES) {
    const a = await chunkSet(join(dir, "a.dump"), avg);
    const b = await chunkSet(join(dir, "b.dump"), avg);
    const full = [...a.values()].reduce((s, n) => s + n, 0);
    const fresh = [...b].filter(([id]) => !a.has(id)).reduce((s, [, n]) => s + n, 0);
    console.log(`${String(avg / 1024).padStart(6)} KiB ${String(a.size).padStart(12)} ${(full / 2 ** 20).toFixed(1).padStart(17)} ${(fresh / 2 ** 20).toFixed(1).padStart(14)} ${((100 * fresh) / full).toFixed(1).padStart(8)}%`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
  await dropDatabase(pg, name);
}
