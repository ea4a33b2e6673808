// Stores a stream of plaintext chunks: id each one, reference those an earlier
// backup stored, seal (zstd + age) the rest and gather them into packs of
// about PACK_TARGET_SIZE, each uploaded once full. Sealing runs on a worker
// thread (seal-thread.ts), so the caller's thread only ids, deduplicates and
// uploads: it is back to reading its source while a batch is being sealed.
// Everything in flight is bounded (two batches of new chunks, a few packs), so
// memory does not grow with the dump's size; the manifest's chunk list keeps
// stream order. Pack buffers travel to the main thread for upload and back
// for reuse: a backup allocates a few of them, not a Buffer per chunk.
import { createHash } from "node:crypto";
import { Worker } from "node:worker_threads";
import { CHUNKER, PACK_TARGET_SIZE, packKey, type ChunkRef } from "../../workers/shared/format.ts";
import { chunkPieces } from "./chunker.ts";
import { ChunkSealer, chunkId } from "./codec.ts";
import type { RepositoryClient } from "./client.ts";
import { RUNNER_SETTINGS } from "../settings.ts";
import { IDLE_EXIT_MS, type FromSealer, type SealThreadConfig, type ToSealer } from "./seal-thread.ts";

export interface WriterStats {
  stored_bytes: number;
  new_stored_bytes: number;
  new_chunks: number;
}

/** A new chunk's reference; `pack`, `offset`, `stored_size` and `stored_sha256` are filled in once its pack is stored. Repeats share the object. */
type Placement = ChunkRef;

/** New chunks' plaintexts are copied back to back into batches of about this size, one message each. */
const BATCH_BYTES = 1024 * 1024;
/** Batches handed to the sealer and not yet sealed: one being sealed, one waiting. */
const BATCHES_IN_FLIGHT = 2;

export class ChunkWriter {
  readonly stats: WriterStats = { stored_bytes: 0, new_stored_bytes: 0, new_chunks: 0 };
  /** Milliseconds add() spent waiting for the sealer or the uploads (the backup's timeline line). */
  waitedMs = 0;
  /** finish()'s list, one entry per add(). Plain objects, not a promise per chunk: a 4 GiB dump has ~60,000 chunks. */
  private readonly refs: ChunkRef[] = [];
  /** Chunks this backup references: repeats and known chunks cost no request. */
  private readonly seen = new Map<string, ChunkRef>();
  /** This backup's new chunks in the order they went to the sealer (a pack names them by index here). */
  private readonly fresh: Placement[] = [];
  private readonly uploading = new Set<Promise<unknown>>();
  private batch: Buffer | undefined;
  private batchSizes: number[] = [];
  private batchUsed = 0;
  private readonly spareBatches: Buffer[] = [];
  private batchesInFlight = 0;
  /** Callers waiting for room; woken whenever a batch is sealed, an upload ends or something fails. */
  private waiting: (() => void)[] = [];
  private flushed: (() => void) | undefined;
  private failure: unknown;
  private thread: Worker | undefined;
  private readonly repo: RepositoryClient;
  private readonly prefix: string;
  private readonly idKey: Buffer;
  private readonly recipients: string[];
  private readonly batchCapacity: number;

  private readonly idleExitMs: number;

  /** `idleExitMs`: how long the sealing thread waits for work before it ends (seal-thread.ts); tests shorten it. */
  constructor(repo: RepositoryClient, prefix: string, recipients: string[], idKeyHex: string, idleExitMs = IDLE_EXIT_MS) {
    this.idleExitMs = idleExitMs;
    this.repo = repo;
    this.prefix = prefix;
    this.recipients = recipients;
    new ChunkSealer(recipients); // bad recipients fail here, in the caller, not later on the thread
    this.idKey = Buffer.from(idKeyHex, "hex");
    this.batchCapacity = BATCH_BYTES + CHUNKER.max_size;
  }

  /**
   * Chunks an earlier backup stored: referenced without a request (its
   * manifest vouches for them), but only if they were encrypted to exactly
   * this backup's recipients. After BACKUP_ENCRYPTION_KEY changes, reusing
   * them would leave the new backup readable with the retired identity, so
   * the first backup after a rotation stores everything afresh (a new full)
   * and the next ones reuse from it. Returns whether the chunks were taken.
   */
  know(refs: Iterable<ChunkRef>, encryptedTo: string[]): boolean {
    if (!sameRecipients(encryptedTo, this.recipients)) {
      console.warn("parent backup was encrypted to other recipients (key rotation): storing every chunk afresh");
      return false;
    }
    for (const r of refs) if (!this.seen.has(r.id)) this.seen.set(r.id, r);
    return true;
  }

  /**
   * Ids and places a chunk, whole or as its pieces (chunkPieces); the caller
   * keeps its buffers: the bytes are copied before this returns a promise.
   * Waits while the sealer or the uploads are at their bound, and
   * throws the first failure. Returns the chunk's index in finish()'s list
   * (fixed at the call, so concurrent producers can each keep their own).
   */
  async add(plaintext: Buffer | readonly Buffer[]): Promise<number> {
    if (this.failure) throw this.failure;
    const pieces = Buffer.isBuffer(plaintext) ? [plaintext] : plaintext;
    const id = chunkId(this.idKey, pieces);
    let ref = this.seen.get(id);
    if (!ref) {
      let size = 0;
      for (const piece of pieces) size += piece.length;
      ref = { id, plain_size: size, pack: "", offset: 0, stored_size: 0, stored_sha256: "" };
      this.seen.set(id, ref);
      this.append(pieces, size); // before the push: a thread it starts numbers its first chunk (the unsent batch's, or this one) right
      this.fresh.push(ref);
    }
    const index = this.refs.push(ref) - 1;
    const before = performance.now();
    while (!this.failure && (this.batchesInFlight >= BATCHES_IN_FLIGHT || this.uploading.size >= UPLOAD_CONCURRENCY)) await this.sleep();
    this.waitedMs += performance.now() - before;
    if (this.failure) throw this.failure;
    return index;
  }

  /** All chunk references in stream order, once the last pack is uploaded. */
  async finish(): Promise<ChunkRef[]> {
    try {
      if (this.batchSizes.length > 0) this.thread ??= this.startThread(); // the last batch, after the thread went idle
      if (this.thread) {
        this.send();
        const done = new Promise<void>((resolve) => (this.flushed = resolve));
        this.post({ type: "flush" });
        while (!this.failure && this.flushed) await Promise.race([done, this.sleep()]);
      }
      while (!this.failure && this.uploading.size > 0) await this.sleep();
    } finally {
      this.close();
    }
    if (this.failure) throw this.failure;
    for (const r of this.refs) {
      if (!r.pack) throw new Error(`chunk ${r.id} was never stored`); // a bug, not bad input: every pack's upload was awaited
      this.stats.stored_bytes += r.stored_size;
    }
    return this.refs;
  }

  /** Stops the sealing thread (finish() does; call it when a backup gives up before finishing). */
  close(): void {
    void this.thread?.terminate();
    this.thread = undefined;
    this.batch = undefined;
    this.spareBatches.length = 0;
  }

  private append(pieces: readonly Buffer[], size: number): void {
    this.thread ??= this.startThread();
    if (this.batch && this.batchUsed + size > this.batch.length) this.send();
    this.batch ??= this.spareBatches.pop() ?? Buffer.allocUnsafeSlow(Math.max(this.batchCapacity, size));
    for (const piece of pieces) this.batchUsed += piece.copy(this.batch, this.batchUsed);
    this.batchSizes.push(size);
    if (this.batchUsed >= BATCH_BYTES) this.send();
  }

  /** Hands the current batch to the sealer. */
  private send(): void {
    if (!this.batch || this.batchSizes.length === 0) return;
    const batch = this.batch.buffer as ArrayBuffer;
    this.post({ type: "seal", batch, sizes: this.batchSizes }, [batch]);
    this.batchesInFlight++;
    this.batch = undefined;
    this.batchSizes = [];
    this.batchUsed = 0;
  }

  private post(message: ToSealer, transfer: ArrayBuffer[] = []): void {
    this.thread?.postMessage(message, transfer);
  }

  private startThread(): Worker {
    const config: SealThreadConfig = {
      recipients: this.recipients, packTarget: PACK_TARGET_SIZE, first: this.fresh.length - this.batchSizes.length, idleExitMs: this.idleExitMs,
      // Room for a full pack plus the largest chunk file, so a pack is cut only once it reaches the target.
      packCapacity: PACK_TARGET_SIZE + new ChunkSealer(this.recipients).maxSealedSize(CHUNKER.max_size),
    };
    const thread = new Worker(new URL("./seal-thread.ts", import.meta.url), { workerData: config, resourceLimits: THREAD_LIMITS });
    thread.unref(); // never what keeps the runner alive
    // finish(), close() and a failure end the thread; one its writer's caller
    // dropped unfinished (its source failed) ends itself once idle (seal-thread.ts).
    // The listeners hold the writer strongly: while a caller awaits room, the
    // thread's messages are the only thing that will wake it, so they must keep it alive.
    thread.on("message", (m: FromSealer) => this.receive(m));
    thread.on("error", (e) => this.fail(e));
    thread.on("exit", (code) => {
      if (this.thread === thread) this.fail(new Error(`the sealing thread exited (${code})`));
    });
    return thread;
  }

  private receive(m: FromSealer): void {
    if (m.type === "sealed") {
      this.batchesInFlight--;
      if (m.batch.byteLength === this.batchCapacity && this.thread) this.spareBatches.push(Buffer.from(m.batch));
    } else if (m.type === "pack") {
      this.upload(m);
    } else if (m.type === "idle") {
      // The thread ends; its open pack came just before this. The next new chunk starts another.
      // A batch sent as it went idle would be lost: fail rather than wait for it forever.
      this.thread = undefined;
      if (this.batchesInFlight > 0) this.fail(new Error("the sealing thread went idle with a batch pending"));
    } else if (m.type === "flushed") {
      const done = this.flushed;
      this.flushed = undefined;
      done?.();
    } else {
      this.fail(new Error(`sealing failed: ${m.message}`));
    }
    this.notify();
  }

  private upload(pack: Extract<FromSealer, { type: "pack" }>): void {
    const bytes = Buffer.from(pack.buffer, 0, pack.size);
    const placements = this.fresh.slice(pack.first, pack.first + pack.offsets.length);
    placements.forEach((p, i) => {
      p.offset = pack.offsets[i]!;
      p.stored_size = pack.stored[i]!;
      p.stored_sha256 = pack.sha256[i]!;
    });
    const upload = this.repo.put(packKey(this.prefix, pack.id), bytes, pack.id).then(() => {
      this.stats.new_chunks += placements.length;
      this.stats.new_stored_bytes += bytes.length;
      for (const p of placements) p.pack = pack.id;
      // Only a finished upload frees its buffer (after a failure the backup stops anyway).
      this.post({ type: "spare", buffer: pack.buffer }, [pack.buffer]);
    }, (e: unknown) => this.fail(e));
    const tracked: Promise<unknown> = upload.finally(() => {
      this.uploading.delete(tracked);
      this.notify();
    });
    this.uploading.add(tracked);
  }

  private fail(e: unknown): void {
    this.failure ??= e;
    this.close(); // nothing sealed from here on is stored
    this.notify();
  }

  private sleep(): Promise<void> {
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private notify(): void {
    const waiting = this.waiting;
    this.waiting = [];
    for (const wake of waiting) wake();
  }
}

/**
 * A byte stream (a dump's) chunked into `writer`, each chunk taken as the
 * pieces it was read in (no copy before the writer's own). Returns its length,
 * SHA-256, and how long reading and chunking the source took (the rest of the
 * wall time went to the writer: its waits, ids and copies). `progress`: the
 * bytes so far, after each chunk.
 */
export async function storeStream(source: AsyncIterable<Uint8Array>, writer: ChunkWriter, progress: (bytes: number) => void = () => {}) {
  const hash = createHash("sha256");
  let bytes = 0;
  let readingMs = 0;
  let mark = performance.now();
  for await (const pieces of chunkPieces(source)) {
    readingMs += performance.now() - mark;
    for (const piece of pieces) {
      hash.update(piece);
      bytes += piece.length;
    }
    await writer.add(pieces);
    progress(bytes);
    mark = performance.now();
  }
  return { bytes, sha256: hash.digest("hex"), readingMs };
}

/**
 * The sealing thread's V8 heap: it holds a few small objects at a time (the
 * bytes are ArrayBuffers outside the heap), so a small heap keeps the
 * runner's resident memory down, as --max-semi-space-size=1 does for the main thread.
 */
const THREAD_LIMITS = { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32 };

/** Packs are ~8 MiB: a few uploads in flight bound memory to a few packs (runner/settings.ts). */
const UPLOAD_CONCURRENCY = RUNNER_SETTINGS.packUploads;

/** Equal as sets: order does not matter to age. */
export function sameRecipients(a: string[], b: string[]): boolean {
  const x = new Set(a);
  return x.size === new Set(b).size && b.every((r) => x.has(r));
}
