// runner/repository/zstd.ts drives Node's zstd handle directly to keep one
// context for many chunks: its frames must be what the zstd CLI and Node's
// one-shot API read, chunk after chunk through one context, and a bad frame
// must fail loudly without spoiling the frames after it. Chunk files already
// stored may hold more than one frame (see below): the reader takes them all.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import zlib from "node:zlib";
import { describe, expect, it } from "vitest";
import { FrameCompressor, FrameDecompressor, maxFrameSize } from "../../runner/repository/zstd.ts";

// Compressible, incompressible, empty and the chunker's maximum (256 KiB) sizes.
const inputs = [
  Buffer.alloc(0),
  Buffer.from("x"),
  Buffer.alloc(70_000, "NGC 1300 barred spiral "),
  randomBytes(65_536),
  Buffer.concat([randomBytes(100_000), Buffer.alloc(162_144, "M31 ")]),
  randomBytes(262_144),
];

describe("zstd frames from reused contexts", () => {
  it("each chunk is one standard frame: the zstd CLI and zstdDecompressSync read it", () => {
    const z = new FrameCompressor(1);
    for (const input of inputs) {
      const frame = Buffer.from(z.compress(input));
      expect(frame.length).toBeLessThanOrEqual(maxFrameSize(input.length));
      expect(zlib.zstdDecompressSync(frame).equals(input)).toBe(true);
      expect(execFileSync("zstd", ["-d", "-q", "-c"], { input: frame }).equals(input)).toBe(true);
    }
  });

  it("compresses as well as the one-shot API at the same level, and level 1 really is level 1", () => {
    const text = Buffer.from(Array.from({ length: 20_000 }, (_, i) => `obs ${i} ra=${(i * 0.37) % 360} dec=${(i * 0.11) % 90}\n`).join(""));
    const oneShot = (level: number) => zlib.zstdCompressSync(text, { params: { [zlib.constants.ZSTD_c_compressionLevel]: level } }).length;
    const reused = (level: number) => {
      const z = new FrameCompressor(level);
      z.compress(randomBytes(1000)); // a frame before: the level must survive it
      return z.compress(text).length;
    };
    expect(reused(1)).toBe(oneShot(1));
    expect(reused(9)).toBe(oneShot(9));
    expect(reused(9)).toBeLessThan(reused(1));
  });

  it("a decompressor reads frames of any writer, in any order, each to its exact size", () => {
    const frames = inputs.map((input, i) => (i % 2 ? zlib.zstdCompressSync(input) : Buffer.from(new FrameCompressor(3).compress(input))));
    const d = new FrameDecompressor();
    for (const i of [5, 0, 2, 3, 1, 4, 2]) expect(d.decompress(frames[i]!, inputs[i]!.length).equals(inputs[i]!)).toBe(true);
    expect(d.decompress(frames[2]!).equals(inputs[2]!)).toBe(true); // no size: the one-shot path
  });

  it("reads a chunk file of two frames, data then empty, as zstdCompressSync wrote whenever its output filled whole 16 KiB pieces", () => {
    const input = inputs[4]!;
    const twoFrames = Buffer.concat([zlib.zstdCompressSync(input), zlib.zstdCompressSync(Buffer.alloc(0))]);
    expect(execFileSync("zstd", ["-d", "-q", "-c"], { input: twoFrames }).equals(input)).toBe(true);
    expect(new FrameDecompressor().decompress(twoFrames, input.length).equals(input)).toBe(true);
  });

  it("refuses a frame of another size, a cut frame and garbage, and reads the next good frame", () => {
    const input = inputs[4]!;
    const frame = Buffer.from(new FrameCompressor(1).compress(input));
    const d = new FrameDecompressor();
    expect(() => d.decompress(frame, input.length - 1)).toThrow(/more than/);
    expect(() => d.decompress(frame, input.length + 1)).toThrow(/expected/);
    expect(() => d.decompress(frame.subarray(0, frame.length - 100), input.length)).toThrow(/zstd/);
    expect(() => d.decompress(randomBytes(5000), 5000)).toThrow(/zstd/);
    expect(d.decompress(frame, input.length).equals(input)).toBe(true);
  });
});
