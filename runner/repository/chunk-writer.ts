// Stores a stream of plaintext chunks: id each one, reference those an earlier
// backup stored, seal (zstd + age) the rest and gather them into packs of
// about PACK_TARGET_SIZE, each uploaded once full. Uploads run concurrently
// but bounded, so memory is a few packs whatever the dump's size; the
// manifest's chunk list keeps stream order. Chunks are sealed straight into
// the open pack's buffer, and a pack's buffer is reused once its upload is
// done: a backup allocates a few pack buffers, not several Buffers per chunk.
import { createHash } from "node:crypto";
import { CHUNKER, PACK_TARGET_SIZE, packKey, type ChunkRef } from "../../workers/shared/format.ts";
import { ChunkSealer, chunkId, sha256Hex } from "./codec.ts";
import type { RepositoryClient } from "./client.ts";

export interface WriterStats {
  stored_bytes: number;
  new_stored_bytes: number;
  new_chunks: number;
}

/** A new chunk's reference; its `pack` is "" until that pack is stored. Repeats share the object. */
type Placement = ChunkRef;

/** An open pack: sealed chunk files written back to back into `buffer` until it is big enough to upload. */
class OpenPack {
  readonly placements: Placement[] = [];
  size = 0;
  buffer: Buffer;
  constructor(buffer: Buffer) {
    this.buffer = buffer;
  }
}

export class ChunkWriter {
  readonly stats: WriterStats = { stored_bytes: 0, new_stored_bytes: 0, new_chunks: 0 };
  /** finish()'s list, one entry per add(). Plain objects, not a promise per chunk: a 4 GiB dump has ~60,000 chunks. */
  private readonly refs: ChunkRef[] = [];
  /** Chunks this backup references: repeats and known chunks cost no request. */
  private readonly seen = new Map<string, ChunkRef>();
  private readonly uploading = new Set<Promise<unknown>>();
  /** Pack buffers whose upload is done, ready for the next pack. */
  private readonly spare: Buffer[] = [];
  private readonly packCapacity: number;
  private pack: OpenPack;
  private failure: unknown;
  private readonly repo: RepositoryClient;
  private readonly prefix: string;
  private readonly sealer: ChunkSealer;
  private readonly idKey: Buffer;
  private readonly recipients: string[];

  constructor(repo: RepositoryClient, prefix: string, recipients: string[], idKeyHex: string) {
    this.repo = repo;
    this.prefix = prefix;
    this.recipients = recipients;
    this.sealer = new ChunkSealer(recipients);
    this.idKey = Buffer.from(idKeyHex, "hex");
    // Room for a full pack plus the largest chunk file, so a pack is cut only once it reaches the target.
    this.packCapacity = PACK_TARGET_SIZE + this.sealer.maxSealedSize(CHUNKER.max_size);
    this.pack = new OpenPack(Buffer.alloc(0)); // its buffer comes with the first chunk: a deduplicated backup needs none
  }

  /**
   * Chunks an earlier backup stored: referenced without a request (its
   * manifest vouches for them), but only if they were encrypted to exactly
   * this backup's recipients. After BACKUP_ENCRYPTION_KEY changes, reusing
   * them would leave the new backup readable with the retired identity, so
   * the first backup after a rotation stores everything afresh (a new full)
   * and the next ones reuse from it. Returns whether the chunks were taken.
   */
  know(refs: ChunkRef[], encryptedTo: string[]): boolean {
    if (!sameRecipients(encryptedTo, this.recipients)) {
      console.warn("parent backup was encrypted to other recipients (key rotation): storing every chunk afresh");
      return false;
    }
    for (const r of refs) if (!this.seen.has(r.id)) this.seen.set(r.id, r);
    return true;
  }

  /**
   * Seals and places a chunk; waits while uploads are at their bound, and
   * throws the first failure. Returns the chunk's index in finish()'s list
   * (fixed at the call, so concurrent producers can each keep their own).
   */
  async add(plaintext: Buffer): Promise<number> {
    if (this.failure) throw this.failure;
    const id = chunkId(this.idKey, plaintext);
    let ref = this.seen.get(id);
    if (!ref) {
      ref = this.place(plaintext, id);
      this.seen.set(id, ref);
    }
    const index = this.refs.push(ref) - 1;
    while (this.uploading.size >= UPLOAD_CONCURRENCY) await Promise.race(this.uploading);
    if (this.failure) throw this.failure;
    return index;
  }

  /** All chunk references in stream order, once the last pack is uploaded. */
  async finish(): Promise<ChunkRef[]> {
    if (this.pack.size > 0) this.flush();
    await Promise.all(this.uploading);
    this.spare.length = 0; // no more packs: let the buffers go before the manifest is built
    if (this.failure) throw this.failure;
    for (const r of this.refs) {
      if (!r.pack) throw new Error(`chunk ${r.id} was never stored`); // a bug, not bad input: every pack's upload was awaited
      this.stats.stored_bytes += r.stored_size;
    }
    return this.refs;
  }

  private place(plaintext: Buffer, id: string): Placement {
    const need = this.sealer.maxSealedSize(plaintext.length);
    if (this.pack.size + need > this.pack.buffer.length) {
      if (this.pack.size > 0) this.flush();
      this.pack.buffer = this.spare.pop() ?? Buffer.allocUnsafeSlow(Math.max(this.packCapacity, need));
    }
    const pack = this.pack;
    const offset = pack.size;
    const stored = this.sealer.sealInto(plaintext, pack.buffer, offset);
    const file = pack.buffer.subarray(offset, offset + stored);
    const placement: Placement = { id, plain_size: plaintext.length, pack: "", offset, stored_size: stored, stored_sha256: sha256Hex(file) };
    pack.placements.push(placement);
    pack.size += stored;
    if (pack.size >= PACK_TARGET_SIZE) this.flush();
    return placement;
  }

  private flush(): void {
    const pack = this.pack;
    this.pack = new OpenPack(Buffer.alloc(0));
    const bytes = pack.buffer.subarray(0, pack.size);
    const packId = createHash("sha256").update(bytes).digest("hex");
    const upload = this.repo.put(packKey(this.prefix, packId), bytes, packId).then(() => {
      this.stats.new_chunks += pack.placements.length;
      this.stats.new_stored_bytes += bytes.length;
      for (const p of pack.placements) p.pack = packId;
      // Only a finished upload frees its buffer (after a failure the backup stops anyway).
      if (pack.buffer.length === this.packCapacity) this.spare.push(pack.buffer);
    }, (e: unknown) => {
      this.failure ??= e;
    });
    this.track(this.uploading, upload);
  }

  private track(set: Set<Promise<unknown>>, p: Promise<unknown>): void {
    const tracked: Promise<unknown> = p.finally(() => set.delete(tracked));
    set.add(tracked);
  }
}

/** Packs are ~8 MiB: two uploads in flight bound memory to a few packs. */
const UPLOAD_CONCURRENCY = 2;

/** Equal as sets: order does not matter to age. */
export function sameRecipients(a: string[], b: string[]): boolean {
  const x = new Set(a);
  return x.size === new Set(b).size && b.every((r) => x.has(r));
}
