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
// The last line is JSON. bench/backup-path.ts does the same for backups.
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CHUNKER, SHARED_PACK_PREFIX, type ChunkRef } from "../workers/shared/format.ts";
import { chunkStream } from "../runner/repository/chunker.ts";
import { ChunkWriter } from "../runner/repository/chunk-writer.ts";
import { ChunkTable } from "../runner/repository/chunk-table.ts";
import { dumpStream } from "../runner/database/plaintext.ts";
import { feed } from "../runner/database/feed.ts";
import { ageKeyPair } from "../runner/dev/secrets.ts";
import { MiB, compareRuns, dataPathArgs, dumpBytes, fileRepository, sourceLabel, startMeasuring } from "./support/data-path.ts";

const args = dataPathArgs(join(tmpdir(), "astrid-restore-path"));

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

/** Chunks and seals the input into packs in `work` (once: reused while source and size match). */
async function prepare(work: string, limit: number): Promise<Prepared> {
  const source = sourceLabel(args);
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
  for await (const chunk of chunkStream(dumpBytes(args, limit))) {
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

/** One restore of the prepared packs, in this (child) process. */
async function child(work: string): Promise<void> {
  const p = JSON.parse(readFileSync(join(work, "prepared.json"), "utf8")) as Prepared;
  const manifest = { pack_prefix: SHARED_PACK_PREFIX, chunks: ChunkTable.from(p.chunks), dump: { sha256: p.sha256 } };
  p.chunks = [];
  const sink = spawn("cat", [], { stdio: ["pipe", "ignore", "inherit"] });
  const exited = new Promise<number | null>((resolve) => sink.once("exit", resolve));
  let got = 0;
  const stop = startMeasuring();
  const dump = dumpStream(fileRepository(work), manifest, [p.identity], (n) => (got = n), p.chunk_id_key);
  await feed(sink, dump, false, (piece) => dump.release(piece)); // as restore.ts feeds pg_restore
  const r = stop(p.bytes);
  if ((await exited) !== 0 || got !== p.bytes) throw new Error(`restored ${got} of ${p.bytes} bytes`);
  console.log(JSON.stringify(r));
}

if (args.child) {
  await child(args.child);
} else {
  const p = await prepare(args.work!, Number(args.mb) * MiB);
  await compareRuns("restore-path", fileURLToPath(import.meta.url), args, { bytes: p.bytes, chunks: p.chunks.length, source: p.source });
}
