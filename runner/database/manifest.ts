import { DatabaseManifest } from "../../workers/shared/format.ts";
import { AppError } from "../../workers/shared/errors.ts";
import type { RepositoryClient } from "../repository/client.ts";
import { readManifestFile } from "../repository/manifest-file.ts";

/** Reads and checks a manifest: a malformed or inconsistent one is refused before any restore starts. */
export async function readManifest(repo: RepositoryClient, key: string): Promise<DatabaseManifest> {
  const manifest = await readManifestFile(repo, key, DatabaseManifest);
  const total = manifest.chunks.reduce((sum, c) => sum + c.plain_size, 0);
  if (total !== manifest.dump.logical_bytes) {
    throw new AppError("manifest_invalid", `${key}: chunks add up to ${total} bytes, the dump had ${manifest.dump.logical_bytes}`);
  }
  return manifest;
}
