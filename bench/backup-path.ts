// The backup path's per-byte work, end to end and in-process, measured the
// way it runs in the runner: CPU seconds per GiB of dump (process.cpuUsage,
// all threads of the process, so the sealing thread too) and peak RSS, in a
// fresh Node process started with the runner's flags and malloc settings
// (runner/dev/stack.ts).
//
//   npm exec -- node bench/backup-path.ts [--file dump | --db name] [--mb 256] [--runs 3] [--semi 1,2,4] [--baseline dir] [--prof]
//
// Once per input the dump's first --mb MiB are saved to a file in --work (kept
// between runs), so pg_dump's own CPU is never counted. Each run then backs it
// up in a child process as runner/database/backup.ts does: a child `cat`
// writes the file into a pipe (as pg_dump does), read by storeStream
// (FastCDC, the whole-dump SHA-256) and ChunkWriter (keyed-id HMAC, dedup,
// batches to the sealing thread: zstd, age, the chunk files' and packs'
// SHA-256), whose packs go to a repository that discards them: the HTTP
// client's and the repository endpoint's costs are not in it. Every run's
// chunk ids, sizes and stored bytes must come out the same (checked: a change
// here must not move a cut point or a stored byte). Compare medians of
// interleaved runs, as for bench/restore-path.ts (--baseline: another
// checkout's copy of this script). The last line is JSON.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createHash, randomBytes } from "node:crypto";
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CHUNKER, SHARED_PACK_PREFIX } from "../workers/shared/format.ts";
import { StreamSplitter } from "../runner/repository/chunker.ts";
import { ChunkWriter, storeStream } from "../runner/repository/chunk-writer.ts";
import { ageKeyPair } from "../runner/dev/secrets.ts";
import { MiB, compareRuns, dataPathArgs, dumpBytes, fileRepository, sourceLabel, startMeasuring } from "./support/data-path.ts";

const args = dataPathArgs(join(tmpdir(), "astrid-backup-path"));

/** What prepare() leaves in the work directory for the runs, beside the dump itself. */
interface Prepared {
  source: string;
  limit: number;
  bytes: number;
  chunks: number;
  recipient: string;
  chunk_id_key: string;
}

const dumpFile = (work: string) => join(work, "dump.bin");

/** Saves the input's first `limit` bytes in `work` (once: reused while source and size match). */
async function prepare(work: string, limit: number): Promise<Prepared> {
  const source = sourceLabel(args);
  const meta = join(work, "prepared.json");
  if (existsSync(meta)) {
    const p = JSON.parse(readFileSync(meta, "utf8")) as Prepared;
    if (p.source === source && p.limit === limit) return p;
  }
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  console.error(`preparing: saving ${limit / MiB} MiB of ${source} to ${dumpFile(work)} ...`);
  const out = createWriteStream(dumpFile(work));
  const splitter = new StreamSplitter();
  let bytes = 0;
  let chunks = 0;
  for await (const piece of dumpBytes(args, limit)) {
    bytes += piece.length;
    chunks += splitter.push(piece).length;
    if (!out.write(piece)) await once(out, "drain");
  }
  chunks += splitter.end().length;
  await new Promise((resolve) => out.end(resolve));
  const p: Prepared = { source, limit, bytes, chunks, recipient: (await ageKeyPair()).recipient, chunk_id_key: randomBytes(32).toString("hex") };
  writeFileSync(meta, JSON.stringify(p));
  return p;
}

/** One backup of the saved dump, in this (child) process. */
async function child(work: string): Promise<void> {
  const p = JSON.parse(readFileSync(join(work, "prepared.json"), "utf8")) as Prepared;
  const stop = startMeasuring();
  const dump = spawn("cat", [dumpFile(work)], { stdio: ["ignore", "pipe", "inherit"] });
  const exited = new Promise<number | null>((resolve) => dump.once("exit", resolve));
  const writer = new ChunkWriter(fileRepository(work, true), SHARED_PACK_PREFIX, [p.recipient], p.chunk_id_key);
  const { bytes, sha256 } = await storeStream(dump.stdout, writer); // as backup.ts stores pg_dump's output
  const chunks = await writer.finish();
  const r = stop(bytes);
  if ((await exited) !== 0 || bytes !== p.bytes) throw new Error(`backed up ${bytes} of ${p.bytes} bytes`);
  // What the manifest would say, less what is random (nonces, so the chunk files' SHA-256).
  const ids = createHash("sha256");
  for (const c of chunks) ids.update(`${c.id} ${c.plain_size} ${c.offset} ${c.stored_size}\n`);
  const s = writer.stats;
  r.output = `${chunks.length} chunks (${s.new_chunks} new), ${s.stored_bytes} bytes stored, dump ${sha256.slice(0, 12)}, chunk list ${ids.digest("hex").slice(0, 12)}`;
  console.log(JSON.stringify(r));
}

if (args.child) {
  await child(args.child);
} else {
  const p = await prepare(args.work!, Number(args.mb) * MiB);
  await compareRuns("backup-path", fileURLToPath(import.meta.url), args, { bytes: p.bytes, chunks: p.chunks, source: p.source });
}
