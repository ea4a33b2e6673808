// Checking a backup's stored chunks without any key (restic's checker is the
// model): every chunk is present and its stored bytes hash to what the
// manifest records. Works on any chunk-store manifest; the verify jobs of
// each domain add their own content checks on top.
import type { ChunkStoreManifest } from "../../workers/shared/format.ts";
import { checkSpan, spans } from "./chunk-reader.ts";
import type { RepositoryClient } from "./client.ts";
import type { ChunkList } from "./chunk-table.ts";
import { backupsUsingChunks } from "./manifests.ts";

const CHECK_CONCURRENCY = 3;

/** Checks every chunk, not just up to the first bad one, so the report names all the damage. */
export async function checkStoredChunks(
  repo: RepositoryClient, manifest: Pick<ChunkStoreManifest, "pack_prefix"> & { chunks: ChunkList }, onChecked: (chunks: number) => void,
): Promise<string[]> {
  const all = spans(manifest.chunks);
  const problems: string[] = [];
  let next = 0;
  let done = 0;
  const worker = async () => {
    for (let i = next++; i < all.length; i = next++) {
      problems.push(...(await checkSpan(repo, manifest.pack_prefix, manifest.chunks, all[i]!)));
      done += all[i]!.count;
      onChecked(done);
    }
  };
  await Promise.all(Array.from({ length: CHECK_CONCURRENCY }, worker));
  return problems.sort();
}

/** The verdict on a manifest's problems, naming every backup that shares a damaged chunk (chunks are shared). */
export async function verifyFindings(repo: RepositoryClient, manifest: Pick<ChunkStoreManifest, "pack_prefix"> & { chunks: ChunkList }, problems: string[]) {
  const damaged = new Set(problems.map((p) => /^chunk #\d+ ([0-9a-f]{64})/.exec(p)?.[1]).filter((id): id is string => !!id));
  const affected = damaged.size ? await backupsUsingChunks(repo, manifest.pack_prefix, damaged) : [];
  return { ok: problems.length === 0, checked_chunks: manifest.chunks.length, problems, affected_backups: affected };
}
