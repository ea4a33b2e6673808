// Stores a stream of plaintext chunks: id each one, skip those the repository
// already has, compress and encrypt the rest, upload. Up to `concurrency`
// chunks are in flight; the manifest's chunk list keeps stream order.
import { chunkKey, type ChunkRef } from "../../workers/shared/format.ts";
import { AgeSealer, chunkId, sealChunk, sha256Hex } from "./codec.ts";
import type { RepositoryClient, StoredObjectInfo } from "./client.ts";

export interface WriterStats {
  stored_bytes: number;
  new_stored_bytes: number;
  new_chunks: number;
}

export class ChunkWriter {
  readonly stats: WriterStats = { stored_bytes: 0, new_stored_bytes: 0, new_chunks: 0 };
  private readonly refs: Promise<ChunkRef>[] = [];
  private readonly inFlight = new Set<Promise<unknown>>();
  /** Chunks seen in this backup: a repeated chunk is stored and counted once. */
  private readonly seen = new Map<string, Promise<ChunkRef>>();
  private readonly idKey: Buffer;
  private readonly repo: RepositoryClient;
  private readonly prefix: string;
  private readonly sealer: AgeSealer;
  private readonly concurrency: number;
  private failure: unknown;

  constructor(repo: RepositoryClient, prefix: string, recipients: string[], idKeyHex: string, concurrency = 8) {
    this.repo = repo;
    this.prefix = prefix;
    this.sealer = new AgeSealer(recipients);
    this.idKey = Buffer.from(idKeyHex, "hex");
    this.concurrency = concurrency;
  }

  /** Chunks an earlier backup stored: referenced without a request (its manifest vouches for them). */
  know(refs: ChunkRef[]): void {
    for (const r of refs) if (!this.seen.has(r.id)) this.seen.set(r.id, Promise.resolve(r));
  }

  /** Queues a chunk; waits while the pipeline is full, and throws the first failure. */
  async add(plaintext: Buffer): Promise<void> {
    const id = chunkId(this.idKey, plaintext);
    let ref = this.seen.get(id);
    if (!ref) {
      ref = this.store(id, plaintext);
      this.seen.set(id, ref);
      const tracked: Promise<unknown> = ref.then(() => this.inFlight.delete(tracked), () => this.inFlight.delete(tracked));
      this.inFlight.add(tracked);
    }
    ref.catch(() => {}); // observed by finish(); avoids an unhandled rejection meanwhile
    this.refs.push(ref);
    while (this.inFlight.size >= this.concurrency) await Promise.race(this.inFlight);
    if (this.failure) throw this.failure;
  }

  /** All chunk references in stream order, once every upload has finished. */
  async finish(): Promise<ChunkRef[]> {
    const refs = await Promise.all(this.refs);
    for (const r of refs) this.stats.stored_bytes += r.stored_size;
    return refs;
  }

  private async store(id: string, plaintext: Buffer): Promise<ChunkRef> {
    try {
      // No existence check first: the endpoint is write-once and answers a PUT of
      // an existing chunk with the stored one's description, so a chunk that is
      // new to this backup line costs one request whether or not it exists.
      const key = chunkKey(this.prefix, id);
      const sealed = await sealChunk(plaintext, this.sealer);
      const sha = sha256Hex(sealed);
      const stored = await this.repo.put(key, sealed, sha);
      if (stored.sha256 === sha) {
        this.stats.new_chunks += 1;
        this.stats.new_stored_bytes += sealed.length;
      }
      return { id, plain_size: plaintext.length, ...(await this.describeStored(key, stored)) };
    } catch (e) {
      this.failure ??= e;
      throw e;
    }
  }

  /** Size and SHA-256 of what is really stored; hashed here if the store recorded no checksum (e.g. copied in by another tool). */
  private async describeStored(key: string, info: StoredObjectInfo): Promise<{ stored_size: number; stored_sha256: string }> {
    if (info.sha256) return { stored_size: info.size, stored_sha256: info.sha256 };
    const bytes = await this.repo.get(key);
    return { stored_size: bytes.length, stored_sha256: sha256Hex(bytes) };
  }
}
