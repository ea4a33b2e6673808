// Reads a manifest's chunks back in order with bounded prefetch, checking each
// stored object's size and SHA-256 against the manifest before anything else
// touches it.
import { chunkKey, type ChunkRef } from "../../workers/shared/format.ts";
import { sha256Hex } from "./codec.ts";
import { RepositoryError, type RepositoryClient } from "./client.ts";

export class IntegrityError extends Error {
  override name = "IntegrityError";
}

export async function fetchChunk(repo: RepositoryClient, prefix: string, ref: ChunkRef, index: number): Promise<Buffer> {
  let stored: Buffer;
  try {
    stored = await repo.get(chunkKey(prefix, ref.id));
  } catch (e) {
    const damaged = e instanceof RepositoryError && (e.code === "object_missing" || e.code === "object_unreadable");
    if (damaged) throw new IntegrityError(`chunk #${index} ${ref.id}: ${e.code === "object_missing" ? "missing" : "unreadable"}`);
    throw e;
  }
  if (stored.length !== ref.stored_size) {
    throw new IntegrityError(`chunk #${index} ${ref.id}: ${stored.length} bytes stored, manifest says ${ref.stored_size}`);
  }
  if (sha256Hex(stored) !== ref.stored_sha256) throw new IntegrityError(`chunk #${index} ${ref.id}: stored bytes do not match their SHA-256`);
  return stored;
}

/**
 * Yields transform(chunk) for every chunk in manifest order. Up to `prefetch`
 * chunks are fetched and transformed ahead of the consumer; memory stays at
 * about prefetch x max chunk size whatever the backup's size.
 */
export async function* readChunks<T>(
  repo: RepositoryClient, prefix: string, chunks: ChunkRef[], transform: (stored: Buffer, ref: ChunkRef, index: number) => Promise<T>,
  prefetch = 4,
): AsyncGenerator<T> {
  const window: Promise<T>[] = [];
  let next = 0;
  const launch = () => {
    const index = next++;
    const ref = chunks[index]!;
    const p = fetchChunk(repo, prefix, ref, index).then((stored) => transform(stored, ref, index));
    p.catch(() => {}); // surfaced in order when the consumer reaches it
    window.push(p);
  };
  while (next < chunks.length && window.length < prefetch) launch();
  while (window.length > 0) {
    const value = await window.shift()!;
    if (next < chunks.length) launch();
    yield value;
  }
}
