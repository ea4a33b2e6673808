import { createHash, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { chunkPieces, chunkStream } from "../../runner/repository/chunker.ts";
import { chunkId } from "../../runner/repository/codec.ts";
import { CHUNKER } from "../../workers/shared/format.ts";

async function* pieces(data: Buffer, size: number) {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

async function cut(data: Buffer, pieceSize = 65536): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  for await (const c of chunkStream(pieces(data, pieceSize))) chunks.push(c);
  return chunks;
}

const ids = (chunks: Buffer[]) => chunks.map((c) => createHash("sha256").update(c).digest("hex"));

describe("content-defined chunker", () => {
  const data = randomBytes(48 * 1024 * 1024);

  it("reassembles to the input, with every chunk but the last within [min, max]", async () => {
    const chunks = await cut(data);
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
    for (const c of chunks.slice(0, -1)) {
      expect(c.length).toBeGreaterThanOrEqual(CHUNKER.min_size);
      expect(c.length).toBeLessThanOrEqual(CHUNKER.max_size);
    }
    const average = data.length / chunks.length;
    expect(average).toBeGreaterThan(CHUNKER.avg_size * 0.6);
    expect(average).toBeLessThan(CHUNKER.avg_size * 2);
  });

  it("cuts the same places however the stream is split into reads", async () => {
    expect(ids(await cut(data, 4096))).toEqual(ids(await cut(data, 1_000_003)));
  });

  it("an insertion changes only the chunks around it", async () => {
    const edited = Buffer.concat([data.subarray(0, 20_000_000), Buffer.from("a new observation row"), data.subarray(20_000_000)]);
    const before = new Set(ids(await cut(data)));
    const after = ids(await cut(edited));
    const changed = after.filter((id) => !before.has(id));
    expect(changed.length).toBeGreaterThanOrEqual(1);
    expect(changed.length).toBeLessThanOrEqual(2);
  });

  it("forces a cut at max_size on input without natural cut points", async () => {
    const flat = Buffer.alloc(3 * CHUNKER.max_size + 5, 0);
    const chunks = await cut(flat);
    expect(chunks.map((c) => c.length)).toEqual([CHUNKER.max_size, CHUNKER.max_size, CHUNKER.max_size, 5]);
  });

  it("chunkPieces gives the same chunks as views of the input, with the same keyed ids", async () => {
    const whole = await cut(data.subarray(0, 4 * 1024 * 1024), 65536);
    const key = Buffer.alloc(32, 7);
    const got: Buffer[][] = [];
    for await (const p of chunkPieces(pieces(data.subarray(0, 4 * 1024 * 1024), 65536))) got.push(p);
    expect(got.map((p) => Buffer.concat(p))).toEqual(whole);
    expect(got.some((p) => p.length > 1)).toBe(true);
    expect(got.every((p) => p.every((piece) => piece.buffer === data.buffer))).toBe(true); // no copies
    expect(got.map((p) => chunkId(key, p))).toEqual(whole.map((c) => chunkId(key, c)));
  });

  it("passes small input through as one chunk and empty input as none", async () => {
    expect((await cut(Buffer.from("tiny"))).map(String)).toEqual(["tiny"]);
    expect(await cut(Buffer.alloc(0))).toEqual([]);
  });
});
