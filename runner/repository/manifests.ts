// Walking every manifest in the repository: what garbage collection and
// damage reports need to know about all backups at once.
import { MANIFEST_PREFIX, type DatabaseManifest } from "../../workers/shared/format.ts";
import { readManifest } from "../database/manifest.ts";
import type { RepositoryClient } from "./client.ts";

export async function* allManifests(repo: RepositoryClient): AsyncGenerator<DatabaseManifest> {
  for await (const page of repo.list(MANIFEST_PREFIX)) {
    for (const object of page) yield await readManifest(repo, object.key);
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
