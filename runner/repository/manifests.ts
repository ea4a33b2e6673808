// Walking every manifest in the repository: what garbage collection and
// damage reports need to know about all backups at once (database and ML
// manifests alike: their chunks share the packs).
import { MANIFEST_PREFIX, ML_MANIFEST_PREFIX, type ChunkRef } from "../../workers/shared/format.ts";
import { readManifest } from "../database/manifest.ts";
import { readMlManifest } from "../ml/blobs.ts";
import type { RepositoryClient } from "./client.ts";

export interface ManifestChunks {
  backup_id: string;
  pack_prefix: string;
  chunks: ChunkRef[];
}

export async function* allManifests(repo: RepositoryClient): AsyncGenerator<ManifestChunks> {
  for await (const page of repo.list(MANIFEST_PREFIX)) {
    for (const object of page) yield await readManifest(repo, object.key);
  }
  for await (const page of repo.list(ML_MANIFEST_PREFIX)) {
    for (const object of page) yield await readMlManifest(repo, object.key);
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
