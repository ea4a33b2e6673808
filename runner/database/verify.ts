// database.verify. quick: every chunk is present and its stored bytes hash to
// what the manifest records (no key needed). full: additionally every chunk
// decrypts and authenticates, the whole dump's SHA-256 matches, and
// pg_restore --list reads the archive.
import { spawn } from "node:child_process";
import type { DatabaseVerifyDispatch as VerifyDispatch, DatabaseVerifyResult as VerifyResult } from "../../workers/database/protocol.ts";
import { checkStoredChunks, verifyFindings } from "../repository/checker.ts";
import type { RepositoryClient } from "../repository/client.ts";
import { AppError } from "../../workers/shared/errors.ts";
import type { JobContext } from "../job-context.ts";
import { readManifest, type ReadManifest } from "./manifest.ts";
import { dumpStream } from "./plaintext.ts";
import { feed } from "./feed.ts";
import { exitOf, stderrTail } from "./pg-tools.ts";

export async function verifyBackup(job: VerifyDispatch, ctx: JobContext): Promise<VerifyResult> {
  const started = Date.now();
  const repo = ctx.repository;
  const manifest = await readManifest(repo, job.manifest_key);
  const problems = await checkStoredChunks(repo, manifest, (chunks) => ctx.progress({ phase: "checking chunks", bytes: 0, chunks }));
  if (job.depth === "full" && problems.length === 0) {
    if (job.identities.length === 0) throw new AppError("identity_missing", "a full verify needs the age identity");
    const problem = await checkContents(repo, manifest, job.identities, ctx, job.chunk_id_key);
    if (problem) problems.push(problem);
  }
  return {
    kind: "database.verify", backup_id: job.backup_id, depth: job.depth,
    ...(await verifyFindings(repo, manifest, problems)), duration_ms: Date.now() - started,
  };
}

async function checkContents(repo: RepositoryClient, manifest: ReadManifest, identities: string[], ctx: JobContext, chunkIdKey?: string): Promise<string | undefined> {
  const list = spawn("pg_restore", ["--list"], { stdio: ["pipe", "ignore", "pipe"] });
  const exited = exitOf(list);
  const tail = stderrTail(list);
  try {
    const dump = dumpStream(repo, manifest, identities, (n) => ctx.progress({ phase: "decrypting", bytes: n, chunks: 0 }), chunkIdKey);
    await feed(list, dump, true, (piece) => dump.release(piece));
  } catch (e) {
    list.kill("SIGTERM");
    await exited.catch(() => {});
    return (e as Error).message;
  }
  const { code } = await exited;
  return code === 0 ? undefined : `pg_restore --list cannot read the archive: ${tail().trim().split("\n").slice(-2).join(" | ")}`;
}
