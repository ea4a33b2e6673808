// database.verify. quick: every chunk is present and its stored bytes hash to
// what the manifest records (no key needed). full: additionally every chunk
// decrypts and authenticates, the whole dump's SHA-256 matches, and
// pg_restore --list reads the archive.
import { spawn } from "node:child_process";
import type { DatabaseManifest } from "../../workers/shared/format.ts";
import type { VerifyDispatch, VerifyResult } from "../../workers/shared/protocol.ts";
import { checkSpan, spans } from "../repository/chunk-reader.ts";
import { RepositoryClient } from "../repository/client.ts";
import { JobFailure } from "../failure.ts";
import type { JobContext } from "../job-context.ts";
import { readManifest } from "./manifest.ts";
import { backupsUsingChunks } from "../repository/manifests.ts";
import { dumpStream } from "./plaintext.ts";
import { feed } from "./feed.ts";
import { exitOf, stderrTail } from "./pg-tools.ts";

const QUICK_CONCURRENCY = 3;

export async function verifyBackup(job: VerifyDispatch, ctx: JobContext): Promise<VerifyResult> {
  const started = Date.now();
  const repo = new RepositoryClient(job.repository);
  const manifest = await readManifest(repo, job.manifest_key);
  const problems = await checkStoredChunks(repo, manifest, ctx);
  if (job.depth === "full" && problems.length === 0) {
    if (job.identities.length === 0) throw new JobFailure("identity_missing", "a full verify needs the age identity");
    const problem = await checkContents(repo, manifest, job.identities, ctx, job.chunk_id_key);
    if (problem) problems.push(problem);
  }
  return {
    kind: "database.verify", backup_id: job.backup_id, depth: job.depth,
    ...(await verifyFindings(repo, manifest, problems)), duration_ms: Date.now() - started,
  };
}

/** The verdict on a manifest's problems, naming every backup that shares a damaged chunk (chunks are shared). */
export async function verifyFindings(repo: RepositoryClient, manifest: Pick<DatabaseManifest, "pack_prefix" | "chunks">, problems: string[]) {
  const damaged = new Set(problems.map((p) => /^chunk #\d+ ([0-9a-f]{64})/.exec(p)?.[1]).filter((id): id is string => !!id));
  const affected = damaged.size ? await backupsUsingChunks(repo, manifest.pack_prefix, damaged) : [];
  return { ok: problems.length === 0, checked_chunks: manifest.chunks.length, problems, affected_backups: affected };
}

/** Checks every chunk, not just up to the first bad one, so the report names all the damage. */
export async function checkStoredChunks(repo: RepositoryClient, manifest: Pick<DatabaseManifest, "pack_prefix" | "chunks">, ctx: JobContext): Promise<string[]> {
  const all = spans(manifest.chunks);
  const problems: string[] = [];
  let next = 0;
  let done = 0;
  const worker = async () => {
    for (let i = next++; i < all.length; i = next++) {
      problems.push(...(await checkSpan(repo, manifest.pack_prefix, all[i]!)));
      done += all[i]!.chunks.length;
      ctx.progress({ phase: "checking chunks", bytes: 0, chunks: done });
    }
  };
  await Promise.all(Array.from({ length: QUICK_CONCURRENCY }, worker));
  return problems.sort();
}

async function checkContents(repo: RepositoryClient, manifest: DatabaseManifest, identities: string[], ctx: JobContext, chunkIdKey?: string): Promise<string | undefined> {
  const list = spawn("pg_restore", ["--list"], { stdio: ["pipe", "ignore", "pipe"] });
  const exited = exitOf(list);
  const tail = stderrTail(list);
  try {
    await feed(list, dumpStream(repo, manifest, identities, (n) => ctx.progress({ phase: "decrypting", bytes: n, chunks: 0 }), chunkIdKey), true);
  } catch (e) {
    list.kill("SIGTERM");
    await exited.catch(() => {});
    return (e as Error).message;
  }
  const { code } = await exited;
  return code === 0 ? undefined : `pg_restore --list cannot read the archive: ${tail().trim().split("\n").slice(-2).join(" | ")}`;
}
