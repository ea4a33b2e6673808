// The dump stream of a backup, rebuilt from its chunks: each chunk checked,
// decrypted and decompressed in order (on a worker thread:
// repository/plaintext-reader.ts), the whole checked against the manifest's
// SHA-256 at the end.
import type { DatabaseManifest } from "../../workers/shared/format.ts";
import { IntegrityError } from "../repository/chunk-reader.ts";
import type { RepositoryClient } from "../repository/client.ts";
import { readPlaintext } from "../repository/plaintext-reader.ts";

export async function* dumpStream(
  repo: RepositoryClient, manifest: DatabaseManifest, identities: string[], onBytes: (n: number) => void = () => {}, chunkIdKey?: string,
): AsyncGenerator<Buffer> {
  // With the chunk-id key, each chunk must be the plaintext its id names: the
  // recipients are public, so anyone who can write to R2 could otherwise
  // substitute a chunk that decrypts cleanly (docs/security.md).
  let sha256 = "";
  let total = 0;
  for await (const plain of readPlaintext(repo, manifest.pack_prefix, manifest.chunks, identities, chunkIdKey, (d) => (sha256 = d))) {
    total += plain.length;
    onBytes(total);
    yield plain;
  }
  if (sha256 !== manifest.dump.sha256) throw new IntegrityError(`the restored dump's SHA-256 differs from the manifest's`);
}
