// ml.verify, as database.verify: quick checks that every chunk is present and
// its stored bytes hash to what the manifest records (no key needed); full
// also decrypts every blob and checks its size and SHA-256, so every
// artifact is proven byte for byte.
import type { MlVerifyDispatch, MlVerifyResult } from "../../workers/shared/protocol.ts";
import { checkStoredChunks } from "../database/verify.ts";
import { RepositoryClient } from "../repository/client.ts";
import { chunkOpener } from "../repository/codec.ts";
import { backupsUsingChunks } from "../repository/manifests.ts";
import { JobFailure } from "../failure.ts";
import type { JobContext } from "../job-context.ts";
import { blobBytes, readMlManifest } from "./blobs.ts";

export async function verifyMl(job: MlVerifyDispatch, ctx: JobContext): Promise<MlVerifyResult> {
  const started = Date.now();
  const repo = new RepositoryClient(job.repository);
  const manifest = await readMlManifest(repo, job.manifest_key);
  const problems = await checkStoredChunks(repo, manifest, ctx);
  if (job.depth === "full" && problems.length === 0) {
    if (job.identities.length === 0) throw new JobFailure("identity_missing", "a full verify needs the age identity");
    const open = chunkOpener(job.identities);
    let bytes = 0;
    for (const blob of manifest.blobs) {
      try {
        for await (const part of blobBytes(repo, manifest, blob, open)) {
          bytes += part.length;
          ctx.progress({ phase: "decrypting", bytes, chunks: 0 });
        }
      } catch (e) {
        problems.push((e as Error).message);
      }
    }
  }
  const damaged = new Set(problems.map((p) => /^chunk #\d+ ([0-9a-f]{64})/.exec(p)?.[1]).filter((id): id is string => !!id));
  const affected = damaged.size ? await backupsUsingChunks(repo, manifest.pack_prefix, damaged) : [];
  return {
    kind: "ml.verify", backup_id: job.backup_id, depth: job.depth, ok: problems.length === 0,
    checked_chunks: manifest.chunks.length, problems, affected_backups: affected, duration_ms: Date.now() - started,
  };
}
