// ml.verify, as database.verify: quick checks that every chunk is present and
// its stored bytes hash to what the manifest records (no key needed); full
// also decrypts every blob and checks its size and SHA-256, so every
// artifact is proven byte for byte.
import type { MlVerifyDispatch, MlVerifyResult } from "../../workers/ml/protocol.ts";
import { checkStoredChunks, verifyFindings } from "../repository/checker.ts";
import { chunkOpener } from "../repository/codec.ts";
import { AppError } from "../../workers/shared/errors.ts";
import type { JobContext } from "../job-context.ts";
import { blobBytes, readMlManifest } from "./blobs.ts";

export async function verifyMl(job: MlVerifyDispatch, ctx: JobContext): Promise<MlVerifyResult> {
  const started = Date.now();
  const repo = ctx.repository;
  const manifest = await readMlManifest(repo, job.manifest_key);
  const problems = await checkStoredChunks(repo, manifest, (chunks) => ctx.progress({ phase: "checking chunks", bytes: 0, chunks }));
  if (job.depth === "full" && problems.length === 0) {
    if (job.identities.length === 0) throw new AppError("identity_missing", "a full verify needs the age identity");
    const open = chunkOpener(job.identities, job.chunk_id_key);
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
  return {
    kind: "ml.verify", backup_id: job.backup_id, depth: job.depth,
    ...(await verifyFindings(repo, manifest, problems)), duration_ms: Date.now() - started,
  };
}
