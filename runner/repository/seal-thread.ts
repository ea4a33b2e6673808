// The sealing half of ChunkWriter, on a worker thread: zstd + age for each new
// chunk, written straight into the open pack's buffer, the chunk file's
// SHA-256, and the pack's SHA-256 once it is cut. The main thread keeps what
// must stay in stream order and cheap (reading pg_dump's pipe, FastCDC, keyed
// ids, dedup, uploads), so it goes back to reading the pipe while a batch is
// being sealed instead of leaving pg_dump blocked on a full pipe.
//
// Messages (one ChunkWriter, one thread; all in order):
//   in:  seal {batch, sizes}  new chunks' plaintexts back to back (the batch is transferred, and given back by "sealed")
//        spare {buffer}       a pack buffer whose upload is done, for reuse
//        flush                cut the last pack, then say "flushed"
//   out: pack {buffer, size, id, first, offsets, stored, sha256}  a cut pack (transferred) and its chunks, in order
//        sealed {batch}       the batch's chunks are in packs (open or cut): its buffer comes back
//        flushed | idle (the thread ends: see IDLE_EXIT_MS) | failed {message}
import { createHash } from "node:crypto";
import { parentPort, workerData } from "node:worker_threads";
import { ChunkSealer, sha256Hex } from "./codec.ts";

export interface SealThreadConfig {
  recipients: string[];
  packTarget: number;
  packCapacity: number;
  /** Index, among the backup's new chunks, of the first chunk this thread will seal (a writer may start several threads in turn). */
  first: number;
  idleExitMs: number;
}

export type ToSealer =
  | { type: "seal"; batch: ArrayBuffer; sizes: number[] }
  | { type: "spare"; buffer: ArrayBuffer }
  | { type: "flush" };

export type FromSealer =
  | { type: "pack"; buffer: ArrayBuffer; size: number; id: string; first: number; offsets: number[]; stored: number[]; sha256: string[] }
  | { type: "sealed"; batch: ArrayBuffer }
  | { type: "flushed" }
  | { type: "idle" }
  | { type: "failed"; message: string };

class PackBuilder {
  private readonly sealer: ChunkSealer;
  private readonly config: SealThreadConfig;
  private readonly spare: Buffer[] = [];
  private buffer: Buffer = Buffer.alloc(0);
  private size = 0;
  /** Index (among the backup's new chunks) of the open pack's first chunk, and the open pack's chunks. */
  private first = 0;
  private next = 0;
  private offsets: number[] = [];
  private stored: number[] = [];
  private sha256: string[] = [];
  private readonly post: (m: FromSealer, transfer?: ArrayBuffer[]) => void;

  constructor(config: SealThreadConfig, post: (m: FromSealer, transfer?: ArrayBuffer[]) => void) {
    this.config = config;
    this.first = this.next = config.first;
    this.sealer = new ChunkSealer(config.recipients);
    this.post = post;
  }

  seal(batch: ArrayBuffer, sizes: number[]): void {
    let at = 0;
    for (const size of sizes) {
      this.place(new Uint8Array(batch, at, size));
      at += size;
    }
  }

  recycle(buffer: ArrayBuffer): void {
    if (buffer.byteLength === this.config.packCapacity) this.spare.push(Buffer.from(buffer));
  }

  private place(plaintext: Uint8Array): void {
    const need = this.sealer.maxSealedSize(plaintext.length);
    if (this.size + need > this.buffer.length) {
      if (this.size > 0) this.cut();
      this.buffer = this.spare.pop() ?? Buffer.allocUnsafeSlow(Math.max(this.config.packCapacity, need));
    }
    const n = this.sealer.sealInto(plaintext, this.buffer, this.size);
    this.offsets.push(this.size);
    this.stored.push(n);
    this.sha256.push(sha256Hex(this.buffer.subarray(this.size, this.size + n)));
    this.size += n;
    this.next++;
    if (this.size >= this.config.packTarget) this.cut();
  }

  /** Hands the open pack to the main thread for upload. */
  cut(): void {
    if (this.size === 0) return;
    const id = createHash("sha256").update(this.buffer.subarray(0, this.size)).digest("hex");
    const buffer = this.buffer.buffer as ArrayBuffer;
    this.post({ type: "pack", buffer, size: this.size, id, first: this.first, offsets: this.offsets, stored: this.stored, sha256: this.sha256 }, [buffer]);
    this.buffer = Buffer.alloc(0);
    this.size = 0;
    this.first = this.next;
    this.offsets = [];
    this.stored = [];
    this.sha256 = [];
  }
}

/**
 * A thread that hears nothing for this long hands over its open pack, says
 * "idle" and ends: its writer may have been dropped unfinished (the backup's
 * source failed and that caller does not close() it). A writer still in use
 * (a long run of deduplicated chunks) uploads that pack and starts a new
 * thread for its next new chunk.
 */
export const IDLE_EXIT_MS = 10 * 60_000;

if (parentPort) {
  const port = parentPort;
  const post = (m: FromSealer, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);
  const config = workerData as SealThreadConfig;
  const builder = new PackBuilder(config, post);
  const rest = () => {
    builder.cut();
    post({ type: "idle" });
    port.close(); // not process.exit(): that may drop the messages just posted; with the port closed the thread ends on its own
  };
  let idle = setTimeout(rest, config.idleExitMs);
  port.on("message", (m: ToSealer) => {
    clearTimeout(idle);
    idle = setTimeout(rest, config.idleExitMs);
    try {
      if (m.type === "seal") {
        builder.seal(m.batch, m.sizes);
        post({ type: "sealed", batch: m.batch }, [m.batch]);
      } else if (m.type === "spare") {
        builder.recycle(m.buffer);
      } else {
        builder.cut();
        post({ type: "flushed" });
      }
    } catch (e) {
      post({ type: "failed", message: (e as Error).message });
    }
  });
}
