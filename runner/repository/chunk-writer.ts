// Stores a stream of plaintext chunks: id each one, reference those an earlier
// backup stored, seal (zstd + age) the rest and gather them into packs of
// about PACK_TARGET_SIZE, each uploaded once full. Uploads run concurrently
// but bounded, so memory is a few packs whatever the dump's size; the
// manifest's chunk list keeps stream order.
import { createHash } from "node:crypto";
import { PACK_TARGET_SIZE, packKey, type ChunkRef } from "../../workers/shared/format.ts";
import { AgeSealer, chunkId, sealChunk, sha256Hex } from "./codec.ts";
import type { RepositoryClient } from "./client.ts";

export interface WriterStats {
  stored_bytes: number;
  new_stored_bytes: number;
  new_chunks: number;
}

type Placement = Omit<ChunkRef, "pack"> & { resolve: (ref: ChunkRef) => void; reject: (e: unknown) => void };

/** An open pack: sealed chunk files appended until it is big enough to upload. */
class OpenPack {
  readonly parts: Buffer[] = [];
  readonly placements: Placement[] = [];
  size = 0;
}

export class ChunkWriter {
  readonly stats: WriterStats = { stored_bytes: 0, new_stored_bytes: 0, new_chunks: 0 };
  private readonly refs: Promise<ChunkRef>[] = [];
  /** Chunks this backup references: repeats and known chunks cost no request. */
  private readonly seen = new Map<string, Promise<ChunkRef>>();
  private readonly uploading = new Set<Promise<unknown>>();
  private pack = new OpenPack();
  private failure: unknown;
  private readonly repo: RepositoryClient;
  private readonly prefix: string;
  private readonly sealer: AgeSealer;
  private readonly idKey: Buffer;
  private readonly recipients: string[];

  constructor(repo: RepositoryClient, prefix: string, recipients: string[], idKeyHex: string) {
    this.repo = repo;
    this.prefix = prefix;
    this.recipients = recipients;
    this.sealer = new AgeSealer(recipients);
    this.idKey = Buffer.from(idKeyHex, "hex");
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
    for (const r of refs) if (!this.seen.has(r.id)) this.seen.set(r.id, Promise.resolve(r));
    return true;
  }

  /**
   * Seals and places a chunk; waits while uploads are at their bound, and
   * throws the first failure. Returns the chunk's index in finish()'s list
   * (fixed at the call, so concurrent producers can each keep their own).
   */
  async add(plaintext: Buffer): Promise<number> {
    const id = chunkId(this.idKey, plaintext);
    let ref = this.seen.get(id);
    if (!ref) {
      const file = sealChunk(plaintext, this.sealer);
      ref = new Promise<ChunkRef>((resolve, reject) => this.place(file, { id, plain_size: plaintext.length, resolve, reject }));
      this.seen.set(id, ref);
    }
    ref.catch(() => {}); // observed by finish()
    const index = this.refs.push(ref) - 1;
    while (this.uploading.size >= UPLOAD_CONCURRENCY) await Promise.race(this.uploading);
    if (this.failure) throw this.failure;
    return index;
  }

  /** All chunk references in stream order, once the last pack is uploaded. */
  async finish(): Promise<ChunkRef[]> {
    if (this.pack.size > 0) this.flush();
    await Promise.all(this.uploading);
    if (this.failure) throw this.failure;
    const refs = await Promise.all(this.refs);
    for (const r of refs) this.stats.stored_bytes += r.stored_size;
    return refs;
  }

  private place(file: Buffer, chunk: Pick<Placement, "id" | "plain_size" | "resolve" | "reject">): void {
    const pack = this.pack;
    pack.placements.push({ ...chunk, offset: pack.size, stored_size: file.length, stored_sha256: sha256Hex(file) });
    pack.parts.push(file);
    pack.size += file.length;
    if (pack.size >= PACK_TARGET_SIZE) this.flush();
  }

  private flush(): void {
    const pack = this.pack;
    this.pack = new OpenPack();
    const bytes = Buffer.concat(pack.parts, pack.size);
    pack.parts.length = 0; // the sealed files now live only in `bytes`
    const packId = createHash("sha256").update(bytes).digest("hex");
    const upload = this.repo.put(packKey(this.prefix, packId), bytes, packId).then(() => {
      this.stats.new_chunks += pack.placements.length;
      this.stats.new_stored_bytes += bytes.length;
      for (const { resolve, reject: _, ...ref } of pack.placements) resolve({ ...ref, pack: packId });
    });
    this.track(this.uploading, upload.catch((e) => {
      for (const p of pack.placements) this.fail(e, p.reject);
    }));
  }

  private track(set: Set<Promise<unknown>>, p: Promise<unknown>): void {
    const tracked: Promise<unknown> = p.finally(() => set.delete(tracked));
    set.add(tracked);
  }

  private fail(e: unknown, reject: (e: unknown) => void): void {
    this.failure ??= e;
    reject(e);
  }
}

/** Packs are ~8 MiB: two uploads in flight bound memory to a few packs. */
const UPLOAD_CONCURRENCY = 2;

/** Equal as sets: order does not matter to age. */
export function sameRecipients(a: string[], b: string[]): boolean {
  const x = new Set(a);
  return x.size === new Set(b).size && b.every((r) => x.has(r));
}
