// The dump stream of a backup, rebuilt from its chunks: each chunk checked,
// decrypted and decompressed in order, the whole checked against the
// manifest's SHA-256 at the end.
import { createHash } from "node:crypto";
import type { DatabaseManifest } from "../../workers/shared/format.ts";
import type { ChunkList } from "../repository/chunk-table.ts";
import { readChunks, IntegrityError } from "../repository/chunk-reader.ts";
import type { RepositoryClient } from "../repository/client.ts";
import { chunkId, chunkOpener } from "../repository/codec.ts";

/** What the stream needs of a manifest: a database dump's, or a change-stream segment's with its payload hash as `dump.sha256`. */
type Plaintext = Pick<DatabaseManifest, "pack_prefix"> & { chunks: ChunkList; dump: { sha256: string } };

export async function* dumpStream(
  repo: RepositoryClient, manifest: Plaintext, identities: string[], onBytes: (n: number) => void = () => {}, chunkIdKey?: string,
): AsyncGenerator<Buffer> {
  const open = chunkOpener(identities);
  // With the chunk-id key, each chunk must be the plaintext its id names: the
  // recipients are public, so anyone who can write to R2 could otherwise
  // substitute a chunk that decrypts cleanly (docs/security.md).
  const idKey = chunkIdKey ? Buffer.from(chunkIdKey, "hex") : undefined;
  const hash = createHash("sha256");
  let total = 0;
  const plaintexts = readChunks(repo, manifest.pack_prefix, manifest.chunks, async (stored, ref, index) => {
    let plain: Buffer;
    try {
      plain = await open(stored, ref.plain_size);
    } catch (e) {
      throw new IntegrityError(`chunk #${index} ${ref.id}: ${(e as Error).message}`);
    }
    if (plain.length !== ref.plain_size) throw new IntegrityError(`chunk #${index} ${ref.id}: ${plain.length} bytes after decryption, manifest says ${ref.plain_size}`);
    if (idKey && chunkId(idKey, plain) !== ref.id) throw new IntegrityError(`chunk #${index} ${ref.id}: its keyed id does not match its plaintext`);
    return plain;
  }, { checkStored: !idKey }); // with the key, each chunk's keyed id authenticates it (see readChunks)
  for await (const plain of plaintexts) {
    hash.update(plain);
    total += plain.length;
    onBytes(total);
    yield plain;
  }
  if (hash.digest("hex") !== manifest.dump.sha256) throw new IntegrityError(`the restored dump's SHA-256 differs from the manifest's`);
}
