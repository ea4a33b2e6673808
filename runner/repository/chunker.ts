// Content-defined chunking, FastCDC style (Xia et al., USENIX ATC '16):
// a gear rolling hash, no cut points before min_size, a harder mask before
// avg_size and an easier one after it (normalized chunking, level 2), and a
// forced cut at max_size. Cut points depend only on nearby content, so an
// insertion early in a dump moves the boundaries near it and no others.
import { CHUNKER } from "../../workers/shared/format.ts";

export interface ChunkerParams {
  min_size: number;
  avg_size: number;
  max_size: number;
}

/** 256 fixed pseudo-random 32-bit values (xorshift32 from a fixed seed): part of the chunking, so never change them. */
const GEAR = (() => {
  const table = new Int32Array(256);
  let x = 0x9e3779b9;
  for (let i = 0; i < 256; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    table[i] = x | 0;
  }
  return table;
})();

/**
 * Masks over the hash's HIGH bits: with h = (h << 1) + gear, bit k depends on
 * the last k+1 bytes only, so high bits see a 32-byte window and low bits
 * almost none (low-bit masks measurably lose deduplication).
 */
function highBits(count: number): number {
  return (0xffffffff << (32 - count)) | 0;
}

export class Chunker {
  private readonly minSize: number;
  private readonly avgSize: number;
  private readonly maxSize: number;
  private readonly maskS: number;
  private readonly maskL: number;
  private hash = 0;
  private length = 0;

  constructor(p: ChunkerParams = CHUNKER) {
    this.minSize = p.min_size;
    this.avgSize = p.avg_size;
    this.maxSize = p.max_size;
    const bits = Math.round(Math.log2(p.avg_size));
    this.maskS = highBits(bits + 2);
    this.maskL = highBits(bits - 2);
  }

  /**
   * Scans data from `start`, continuing the current chunk. Returns the offset
   * just past a cut point, or -1 if the chunk continues beyond this buffer.
   */
  scan(data: Uint8Array, start: number): number {
    const end = data.length;
    let i = start;
    let n = this.length;
    if (n < this.minSize) {
      const skip = Math.min(this.minSize - n, end - i);
      i += skip;
      n += skip;
      if (n < this.minSize) return this.pause(n, 0);
    }
    // From here the chunk's length after consuming data[j] is base + j + 1.
    const base = n - i;
    let h = this.hash;
    const normalEnd = Math.min(end, this.avgSize - base);
    for (; i < normalEnd; i++) {
      h = ((h << 1) + GEAR[data[i]!]!) | 0;
      if ((h & this.maskS) === 0) return this.cut(i + 1);
    }
    const maxEnd = Math.min(end, this.maxSize - base);
    for (; i < maxEnd; i++) {
      h = ((h << 1) + GEAR[data[i]!]!) | 0;
      if ((h & this.maskL) === 0) return this.cut(i + 1);
    }
    if (base + i >= this.maxSize) return this.cut(i);
    return this.pause(base + i, h);
  }

  private pause(length: number, hash: number): number {
    this.length = length;
    this.hash = hash;
    return -1;
  }

  private cut(offset: number): number {
    this.length = 0;
    this.hash = 0;
    return offset;
  }
}

/** Cuts a byte stream into content-defined chunks. Holds at most one chunk (max_size) at a time. */
export async function* chunkStream(source: AsyncIterable<Uint8Array>, params: ChunkerParams = CHUNKER): AsyncGenerator<Buffer> {
  for await (const pieces of chunkPieces(source, params)) yield Buffer.concat(pieces);
}

/**
 * chunkStream without the copy: each chunk as the pieces of input it spans
 * (views of the input buffers, in order). A backup hashes and ids the pieces
 * and ChunkWriter copies them once into its batch, instead of a fresh Buffer
 * per chunk first (with 64 KiB pipe reads nearly every chunk spans two or more).
 */
export async function* chunkPieces(source: AsyncIterable<Uint8Array>, params: ChunkerParams = CHUNKER): AsyncGenerator<Buffer[]> {
  const splitter = new StreamSplitter(params);
  for await (const input of source) yield* splitter.pushPieces(input);
  yield* splitter.endPieces();
}

/** chunkStream's push form, for producers that write rather than yield (e.g. NDJSON records). */
export class StreamSplitter {
  private readonly chunker: Chunker;
  private pending: Buffer[] = [];
  constructor(params: ChunkerParams = CHUNKER) {
    this.chunker = new Chunker(params);
  }

  /** The chunks completed by this input, in order. */
  push(input: Uint8Array): Buffer[] {
    return this.pushPieces(input).map((pieces) => Buffer.concat(pieces));
  }

  /** The last, partial chunk, if any. */
  end(): Buffer[] {
    return this.endPieces().map((pieces) => Buffer.concat(pieces));
  }

  /** push() as pieces (see chunkPieces): views of this input and earlier ones, which must not change meanwhile. */
  pushPieces(input: Uint8Array): Buffer[][] {
    const data = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
    const out: Buffer[][] = [];
    let start = 0;
    for (;;) {
      const cut = this.chunker.scan(data, start);
      if (cut < 0) {
        if (start < data.length) this.pending.push(data.subarray(start));
        return out;
      }
      this.pending.push(data.subarray(start, cut));
      out.push(this.pending);
      this.pending = [];
      start = cut;
    }
  }

  endPieces(): Buffer[][] {
    const rest = this.pending.length > 0 ? [this.pending] : [];
    this.pending = [];
    return rest;
  }
}
