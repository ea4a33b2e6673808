// database.backup: pg_dump -Fc -Z0 streamed through content-defined chunking
// into the repository; the manifest is written last, so a backup without a
// manifest is an unfinished one and nothing lists it.
import { spawn } from "node:child_process";
import { CHUNKER, DatabaseManifest, FORMAT_VERSION, manifestKey, packPrefix } from "../../workers/shared/format.ts";
import type { DatabaseBackupDispatch as BackupDispatch, DatabaseBackupResult as BackupResult } from "../../workers/database/protocol.ts";
import { ChunkWriter, storeStream } from "../repository/chunk-writer.ts";
import type { RepositoryClient } from "../repository/client.ts";
import { ZSTD_LEVEL } from "../repository/codec.ts";
import { manifestPieces } from "../repository/manifest-file.ts";
import { AppError } from "../../workers/shared/errors.ts";
import type { JobContext } from "../job-context.ts";
import { readManifest } from "./manifest.ts";
import { classifyPgError, exitOf, major, psql, stderrTail, toolEnv, toolVersion } from "./pg-tools.ts";
import { consistencyAlongside, type ConsistencyAlongside } from "./snapshot-record.ts";

const PG_DUMP_ARGS = ["--format=custom", "--compress=0", "--no-password"];

/**
 * `snapshot`: an exported snapshot to dump (a replication slot's, for the base
 * of a change stream: runner/continuous/); the consistency record is then
 * left out, since it would be taken in a snapshot of its own.
 */
export async function backupDatabase(job: BackupDispatch, ctx: JobContext, opts: { snapshot?: string } = {}): Promise<BackupResult> {
  const started = new Date();
  const repo = ctx.repository;
  const source = await describeSource(job.source_url);
  const prefix = packPrefix(job.type, job.backup_id);
  const writer = new ChunkWriter(repo, prefix, job.recipients, job.chunk_id_key);
  const parent = job.parent_manifest_key ? await usableParent(repo, job.parent_manifest_key, prefix) : undefined;
  if (parent) writer.know(parent.chunks, parent.encryption.recipients);

  // The consistency record (row counts, checksums, schema) is taken in the snapshot pg_dump reads.
  const consistency = opts.snapshot ? inSnapshot(opts.snapshot) : await consistencyAlongside(job.source_url, ctx);
  const dump = spawn("pg_dump", [...PG_DUMP_ARGS, ...consistency.dumpArgs], { env: toolEnv(job.source_url), stdio: ["ignore", "pipe", "pipe"] });
  const exited = exitOf(dump).finally(consistency.dumpDone);
  const tail = stderrTail(dump);
  ctx.onCancel(() => dump.kill("SIGTERM"));
  const streamStart = performance.now();
  let stored: Awaited<ReturnType<typeof storeStream>>;
  try {
    stored = await storeStream(dump.stdout, writer, (bytes) => ctx.progress({ phase: "dumping", bytes, chunks: writer.stats.new_chunks }));
  } catch (e) {
    writer.close();
    dump.kill("SIGTERM");
    await exited.catch(() => {});
    throw e;
  }
  const { code, signal } = await exited;
  if (code !== 0) throw signal ? new AppError("pg_dump_killed", `pg_dump ended by ${signal}`) : classifyPgError("pg_dump", tail(), job.source_url);
  const streamed = performance.now();
  const chunks = await writer.finish();
  const logical = stored.bytes;
  // Where the main thread's time went (bench/database.ts prints it).
  const sec = (ms: number) => (ms / 1000).toFixed(1);
  console.log(`timeline: backup ${job.backup_id}: stream ${sec(streamed - streamStart)} s = reading and chunking pg_dump's output ${sec(stored.readingMs)} s + waiting for sealing/uploads ` +
    `${sec(writer.waitedMs)} s + ids and copies ${sec(streamed - streamStart - stored.readingMs - writer.waitedMs)} s; last uploads ${sec(performance.now() - streamed)} s`);

  const finished = new Date();
  // Validated without its chunk list (manifestPieces checks each chunk): no copy of a list that grows with the dump.
  const fields = DatabaseManifest.parse({
    format: "astrid-backup/database", format_version: FORMAT_VERSION, backup_id: job.backup_id, type: job.type,
    database: job.database, created_at: started.toISOString(), finished_at: finished.toISOString(), source,
    dump: { format: "custom", pg_dump_args: PG_DUMP_ARGS, logical_bytes: logical, sha256: stored.sha256 },
    compression: { algorithm: "zstd", level: ZSTD_LEVEL },
    encryption: { scheme: "age-x25519", recipients: job.recipients },
    chunker: CHUNKER, pack_prefix: prefix, chunks: [],
    stats: { stored_bytes: writer.stats.stored_bytes, new_stored_bytes: writer.stats.new_stored_bytes, new_chunks: writer.stats.new_chunks },
    ...(await consistency.result()),
  });
  const { chunks: _, ...manifest } = fields;
  const body = manifestPieces(manifest, chunks);
  ctx.progress({ phase: "writing manifest", bytes: logical, chunks: chunks.length });
  await repo.put(manifestKey(job.backup_id), body.pieces, body.sha256);
  return {
    kind: "database.backup", backup_id: job.backup_id, manifest_key: manifestKey(job.backup_id), logical_bytes: logical,
    stored_bytes: manifest.stats.stored_bytes, new_stored_bytes: manifest.stats.new_stored_bytes, chunk_count: chunks.length,
    new_chunk_count: manifest.stats.new_chunks, sha256: manifest.dump.sha256, started_at: started.toISOString(),
    finished_at: finished.toISOString(), duration_ms: finished.getTime() - started.getTime(),
  };
}

function inSnapshot(snapshot: string): ConsistencyAlongside {
  return { dumpArgs: [`--snapshot=${snapshot}`], dumpDone: () => {}, result: async () => ({}) };
}

/**
 * The parent's manifest, if it can be read and uses the same chunk store. An
 * unusable parent only costs deduplication, never the backup.
 */
async function usableParent(repo: RepositoryClient, key: string, prefix: string) {
  try {
    const parent = await readManifest(repo, key);
    return parent.pack_prefix === prefix ? parent : undefined;
  } catch (e) {
    console.warn(`parent manifest ${key} unusable, backing up without it: ${(e as Error).message}`);
    return undefined;
  }
}

/** Versions and name of the source; refuses a pg_dump older than the server, which could not read it. */
async function describeSource(url: string) {
  const [row, pgDump] = await Promise.all([psql(url, "SELECT current_setting('server_version') || '|' || current_database()"), toolVersion("pg_dump")]);
  const [serverVersion = "", databaseName = ""] = row.split("|");
  if (major(pgDump) < major(serverVersion)) {
    throw new AppError("pg_dump_too_old", `pg_dump ${pgDump} cannot dump a PostgreSQL ${serverVersion} server; install client tools ${major(serverVersion)} or newer in the runner`);
  }
  return { database_name: databaseName, server_version: serverVersion.split(" ")[0]!, pg_dump_version: pgDump };
}
