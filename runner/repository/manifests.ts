// Walking every manifest of the chunk store: what garbage collection and
// damage reports need to know about all backups at once. Only the fields
// every chunk manifest has are read (format.ts ChunkStoreManifest), so this
// layer knows nothing of what the chunks hold.
import { CHUNK_MANIFEST_PREFIXES, ChunkStoreManifest } from "../../workers/shared/format.ts";
import type { RepositoryClient } from "./client.ts";
import { readManifestFile } from "./manifest-file.ts";

export async function* allManifests(repo: RepositoryClient): AsyncGenerator<ChunkStoreManifest> {
  for (const prefix of CHUNK_MANIFEST_PREFIXES) {
    for await (const page of repo.list(prefix)) {
      for (const object of page) yield await readManifestFile(repo, object.key, ChunkStoreManifest);
    }
  }
}

/** The backups whose manifests reference any of these chunk ids (in the given pack store). */
export async function backupsUsingChunks(repo: RepositoryClient, prefix: string, ids: Set<string>): Promise<string[]> {
  const affected: string[] = [];
  for await (const m of allManifests(repo)) {
    if (m.pack_prefix === prefix && m.chunks.some((c) => ids.has(c.id))) affected.push(m.backup_id);
  }
  return affected.sort();
}
