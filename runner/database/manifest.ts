import { DatabaseManifest } from "../../workers/shared/format.ts";
import { AppError } from "../../workers/shared/errors.ts";
import type { RepositoryClient } from "../repository/client.ts";
import { readPackedManifestFile, type Packed } from "../repository/manifest-file.ts";

/** A database manifest as jobs hold it: the chunk list packed, since a restore keeps it for its whole run. */
export type ReadManifest = Packed<DatabaseManifest>;

/** Reads and checks a manifest: a malformed or inconsistent one is refused before any restore starts. */
export async function readManifest(repo: RepositoryClient, key: string): Promise<ReadManifest> {
  const manifest = await readPackedManifestFile(repo, key, DatabaseManifest);
  let total = 0;
  for (const c of manifest.chunks) total += c.plain_size;
  if (total !== manifest.dump.logical_bytes) {
    throw new AppError("manifest_invalid", `${key}: chunks add up to ${total} bytes, the dump had ${manifest.dump.logical_bytes}`);
  }
  return manifest;
}
