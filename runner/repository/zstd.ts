// zstd frames, one per chunk, from long-lived contexts.
//
// Why not zlib.zstdCompressSync/zstdDecompressSync per chunk: each call builds
// a zlib stream object, a fresh zstd context (its window and hash tables
// allocated and zeroed) and a 16 KiB-at-a-time output list, then throws them
// away. For 64 KiB chunks that set-up cost more than the compression itself
// (bench/pipeline-stages.ts prints both). Here one context per direction is
// kept between chunks (each chunk is one complete frame, after which the
// context is ready for the next) and the output lands in one buffer sized for the largest chunk.
//
// Node exposes no public API for a reusable synchronous context, so this drives
// the stream's native handle the way zlib's own processChunkSync does
// (handle.writeSync + the shared write-state array). That is internal to
// Node: the runner pins its Node version (package.json's `node`,
// runner/Dockerfile), test/node/codec.test.ts checks the frames against the
// zstd CLI and the one-shot API, and if the handle ever lacks what this needs
// it falls back to the one-shot functions.
import zlib from "node:zlib";

interface NativeHandle {
  writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void;
  reset(): void;
}

type Stream = (zlib.ZstdCompress | zlib.ZstdDecompress) & { _handle?: NativeHandle | null; _writeState?: Uint32Array };

/** ZSTD_compressBound (zstd.h) for an input of n bytes, plus a margin: room enough for one call to finish the frame. */
export function maxFrameSize(n: number): number {
  return n + (n >>> 8) + (n < 128 * 1024 ? (128 * 1024 - n) >>> 11 : 0) + 64;
}

class Context {
  private stream: Stream | undefined;
  private readonly create: () => Stream;
  /** A finished compression leaves the context at a frame boundary; a decompression cannot tell, so it resets first. */
  private readonly alwaysReset: boolean;
  private midFrame = false;
  constructor(create: () => Stream, alwaysReset: boolean) {
    this.create = create;
    this.alwaysReset = alwaysReset;
  }

  /**
   * Feeds all of `input` with ZSTD_e_end into `out` and returns how many
   * bytes were written, or -1 when `out` filled up first. A failing call
   * destroys the stream; the next call starts a new one.
   */
  run(input: Uint8Array, out: Uint8Array): number {
    if (this.midFrame) this.discard(); // an unfinished frame from a failed call: start clean
    const stream = (this.stream ??= this.create());
    const handle = stream._handle;
    const state = stream._writeState;
    if (!handle || !state) {
      this.stream = undefined;
      throw new Error("zstd context closed");
    }
    // Decompression has no parameters to lose; a compressor's reset would also drop its level.
    if (this.alwaysReset) handle.reset();
    this.midFrame = true;
    let availIn = input.byteLength;
    let availOut = out.byteLength;
    // zstd may return with input left and room to spare (seen at the end of a
    // decompressed frame); like processChunkSync, call again while that makes progress.
    for (;;) {
      const inBefore = availIn;
      const outBefore = availOut;
      handle.writeSync(zlib.constants.ZSTD_e_end, input, input.byteLength - availIn, availIn, out, out.byteLength - availOut, availOut);
      if (stream.destroyed || !stream._handle) {
        this.stream = undefined;
        throw new Error("zstd: invalid data");
      }
      availOut = state[0]!;
      availIn = state[1]!;
      if (availIn === 0 || availOut === 0 || (availIn === inBefore && availOut === outBefore)) break;
    }
    if (availIn !== 0 || availOut === 0) return -1;
    this.midFrame = false;
    return out.byteLength - availOut;
  }

  private discard(): void {
    this.stream?.close();
    this.stream = undefined;
    this.midFrame = false;
  }

  static usable(create: () => Stream): boolean {
    const s = create();
    const ok = typeof s._handle?.writeSync === "function" && typeof s._handle?.reset === "function" && s._writeState instanceof Uint32Array;
    s.close();
    return ok;
  }
}

function quiet<T extends Stream>(s: T): T {
  s.on("error", () => {}); // failures are reported by run(); nobody listens to the stream itself
  return s;
}

export class FrameCompressor {
  private readonly level: number;
  private readonly context: Context | undefined;
  private out = Buffer.alloc(0);

  constructor(level: number) {
    this.level = level;
    const create = () => quiet(zlib.createZstdCompress(this.options()) as Stream);
    this.context = Context.usable(create) ? new Context(create, false) : undefined;
  }

  private options() {
    return { params: { [zlib.constants.ZSTD_c_compressionLevel]: this.level } };
  }

  /** One complete zstd frame of `input`. The result is a view that the next call overwrites: use or copy it first. */
  compress(input: Uint8Array): Buffer {
    if (!this.context) return zlib.zstdCompressSync(input, this.options());
    const bound = maxFrameSize(input.byteLength);
    if (this.out.length < bound) this.out = Buffer.allocUnsafe(Math.max(bound, 2 * this.out.length));
    const n = this.context.run(input, this.out);
    if (n < 0) throw new Error("zstd: output larger than its bound");
    return this.out.subarray(0, n);
  }
}

export class FrameDecompressor {
  private readonly context: Context | undefined;

  constructor() {
    const create = () => quiet(zlib.createZstdDecompress() as Stream);
    this.context = Context.usable(create) ? new Context(create, true) : undefined;
  }

  /**
   * The content of one zstd frame. With `size`, the frame must hold exactly
   * that many bytes (more, or a frame cut short, throws); without it the
   * one-shot function finds out. The result is a fresh Buffer, or with
   * `into` (at least size + 1 bytes) a view of `into`'s start.
   */
  decompress(frame: Uint8Array, size?: number, into?: Buffer): Buffer {
    if (size === undefined) return zlib.zstdDecompressSync(frame);
    if (!this.context) {
      const plain = zlib.zstdDecompressSync(frame);
      return into && plain.length === size ? into.subarray(0, plain.copy(into)) : plain;
    }
    // One spare byte: a frame longer than `size` fills it and is refused.
    if (into && into.length < size + 1) throw new Error(`zstd: ${into.length} bytes of room for a ${size}-byte frame`);
    const out = into ? into.subarray(0, size + 1) : Buffer.allocUnsafe(size + 1);
    const n = this.context.run(frame, out);
    if (n !== size) throw new Error(n < 0 ? `zstd: frame holds more than ${size} bytes` : `zstd: frame holds ${n} bytes, expected ${size}`);
    return out.subarray(0, size);
  }
}
