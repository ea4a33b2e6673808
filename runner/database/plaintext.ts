// The dump stream of a backup, rebuilt from its chunks: each chunk checked,
// decrypted and decompressed in order, the whole checked against the
// manifest's SHA-256 at the end.
//
// Chunks are decompressed straight into ~1 MiB batches, and the stream
// yields batches, not chunks: a restore then makes one write into pg_restore
// per MiB instead of one per 64 KiB chunk, and no Buffer per chunk. A
// consumer that hands a batch back with release() once it is done with it
// (feed() does when the write has completed) lets the stream reuse it, so a
// restore cycles through a few batch buffers instead of allocating a GiB's
// worth; a consumer that never does just gets new ones.
import { createHash } from "node:crypto";
import type { DatabaseManifest } from "../../workers/shared/format.ts";
import type { ChunkList } from "../repository/chunk-table.ts";
import { readChunks, IntegrityError } from "../repository/chunk-reader.ts";
import type { RepositoryClient } from "../repository/client.ts";
import { chunkId, chunkOpener } from "../repository/codec.ts";

/** What the stream needs of a manifest: a database dump's, or a change-stream segment's with its payload hash as `dump.sha256`. */
type Plaintext = Pick<DatabaseManifest, "pack_prefix"> & { chunks: ChunkList; dump: { sha256: string } };

/** The dump's bytes, a batch at a time; release(piece) hands a yielded piece back for reuse. */
export interface PlaintextStream extends AsyncGenerator<Buffer> {
  release(piece: Buffer): void;
}

/** A batch is yielded once it holds this much; it has room for one more chunk of the usual maximum size (CHUNKER.max_size). */
const BATCH_BYTES = 1024 * 1024;
const BATCH_CAPACITY = BATCH_BYTES + 256 * 1024 + 1;
/** Released batches kept for reuse: one being filled, one being written, one spare. */
const SPARE_BATCHES = 3;

export function dumpStream(
  repo: RepositoryClient, manifest: Plaintext, identities: string[], onBytes: (n: number) => void = () => {}, chunkIdKey?: string,
): PlaintextStream {
  const spare: Buffer[] = [];
  const own = new WeakSet<ArrayBufferLike>();
  // No larger than the whole plaintext: a change-stream segment is often a few KiB.
  let plainBytes = 0;
  for (let i = 0; i < manifest.chunks.length && plainBytes < BATCH_CAPACITY; i++) plainBytes += manifest.chunks.at(i)!.plain_size;
  const capacity = Math.min(BATCH_CAPACITY, plainBytes + 1);
  const stream = batches(repo, manifest, identities, onBytes, chunkIdKey, capacity, () => {
    const b = spare.pop() ?? Buffer.allocUnsafeSlow(capacity); // never a slice of Node's shared pool: its ArrayBuffer is its own
    own.add(b.buffer);
    return b;
  }) as PlaintextStream;
  stream.release = (piece) => {
    // A batch's ArrayBuffer is its own (allocUnsafeSlow), so a piece's names its batch.
    if (!own.has(piece.buffer) || spare.length >= SPARE_BATCHES || spare.some((b) => b.buffer === piece.buffer)) return;
    spare.push(Buffer.from(piece.buffer, 0, capacity));
  };
  return stream;
}

async function* batches(
  repo: RepositoryClient, manifest: Plaintext, identities: string[], onBytes: (n: number) => void, chunkIdKey: string | undefined,
  capacity: number, newBatch: () => Buffer,
): AsyncGenerator<Buffer> {
  const open = chunkOpener(identities);
  // With the chunk-id key, each chunk must be the plaintext its id names: the
  // recipients are public, so anyone who can write to R2 could otherwise
  // substitute a chunk that decrypts cleanly (docs/security.md).
  const idKey = chunkIdKey ? Buffer.from(chunkIdKey, "hex") : undefined;
  const hash = createHash("sha256");
  let total = 0;
  let batch: Buffer | undefined;
  let used = 0;
  const full: Buffer[] = [];
  /** Room for `size` bytes and zstd's spare byte: the rest of this batch, or a new one (a chunk larger than a batch gets its own). */
  const room = (size: number): Buffer => {
    if (!batch || used + size + 1 > batch.length) {
      if (batch && used > 0) full.push(batch.subarray(0, used));
      batch = size + 1 > capacity ? Buffer.allocUnsafe(size + 1) : newBatch();
      used = 0;
    }
    return batch.subarray(used);
  };
  const plaintexts = readChunks(repo, manifest.pack_prefix, manifest.chunks, async (stored, ref, index) => {
    let plain: Buffer;
    try {
      plain = await open(stored, ref.plain_size, undefined, room(ref.plain_size));
    } catch (e) {
      throw new IntegrityError(`chunk #${index} ${ref.id}: ${(e as Error).message}`);
    }
    if (plain.length !== ref.plain_size) throw new IntegrityError(`chunk #${index} ${ref.id}: ${plain.length} bytes after decryption, manifest says ${ref.plain_size}`);
    if (idKey && chunkId(idKey, plain) !== ref.id) throw new IntegrityError(`chunk #${index} ${ref.id}: its keyed id does not match its plaintext`);
    if (plain.buffer === batch!.buffer) {
      used += plain.length;
    } else {
      // Not decompressed into the batch (never, unless the opener changes): it goes out on its own, after what the batch holds.
      if (used > 0) full.push(batch!.subarray(0, used));
      full.push(plain);
      batch = undefined;
      used = 0;
    }
    return plain;
  }, { checkStored: !idKey }); // with the key, each chunk's keyed id authenticates it (see readChunks)
  for await (const plain of plaintexts) {
    hash.update(plain);
    total += plain.length;
    onBytes(total);
    while (full.length > 0) yield full.shift()!;
    if (used >= BATCH_BYTES) {
      yield batch!.subarray(0, used);
      batch = undefined;
    }
  }
  if (batch && used > 0) yield batch.subarray(0, used);
  if (hash.digest("hex") !== manifest.dump.sha256) throw new IntegrityError(`the restored dump's SHA-256 differs from the manifest's`);
}
