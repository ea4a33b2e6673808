import { DatabaseManifest } from "../../workers/shared/format.ts";
import { JobFailure } from "../failure.ts";
import type { RepositoryClient } from "../repository/client.ts";

/** Reads and checks a manifest: a malformed or inconsistent one is refused before any restore starts. */
export async function readManifest(repo: RepositoryClient, key: string): Promise<DatabaseManifest> {
  const raw = await repo.get(key);
  let parsed;
  try {
    parsed = DatabaseManifest.safeParse(JSON.parse(raw.toString("utf8")));
  } catch {
    throw new JobFailure("manifest_invalid", `${key} is not JSON`);
  }
  if (!parsed.success) throw new JobFailure("manifest_invalid", `${key}: ${parsed.error.issues[0]?.message}`);
  const total = parsed.data.chunks.reduce((sum, c) => sum + c.plain_size, 0);
  if (total !== parsed.data.dump.logical_bytes) {
    throw new JobFailure("manifest_invalid", `${key}: chunks add up to ${total} bytes, the dump had ${parsed.data.dump.logical_bytes}`);
  }
  return parsed.data;
}
