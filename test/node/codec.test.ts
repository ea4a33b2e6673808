import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ageKeyPair } from "../../runner/dev/secrets.ts";
import { ChunkSealer, chunkId, chunkOpener, DecryptionError } from "../../runner/repository/codec.ts";

describe("chunk codec (zstd + age)", () => {
  const plaintext = Buffer.concat([randomBytes(100_000), Buffer.alloc(400_000, "NGC 1300 ")]);

  it("round-trips, compressing what compresses", async () => {
    const ops = await ageKeyPair();
    const sealed = new ChunkSealer([ops.recipient]).seal(plaintext);
    expect(sealed.length).toBeLessThan(plaintext.length / 2);
    expect((await chunkOpener([ops.identity])(sealed)).equals(plaintext)).toBe(true);
  });

  it("with several recipients (ops key + offline escrow), either identity alone opens it", async () => {
    const [ops, escrow, stranger] = await Promise.all([ageKeyPair(), ageKeyPair(), ageKeyPair()]);
    const sealed = new ChunkSealer([ops.recipient, escrow.recipient]).seal(plaintext);
    expect((await chunkOpener([ops.identity])(sealed)).equals(plaintext)).toBe(true);
    expect((await chunkOpener([escrow.identity])(sealed)).equals(plaintext)).toBe(true);
    await expect(chunkOpener([stranger.identity])(sealed)).rejects.toBeInstanceOf(DecryptionError);
  });

  it("after key rotation, one opener holding old and new identities reads old and new chunks", async () => {
    const [oldKey, newKey] = await Promise.all([ageKeyPair(), ageKeyPair()]);
    const before = new ChunkSealer([oldKey.recipient]).seal(plaintext);
    const after = new ChunkSealer([newKey.recipient]).seal(plaintext);
    const open = chunkOpener([newKey.identity, oldKey.identity]);
    expect((await open(before)).equals(plaintext)).toBe(true);
    expect((await open(after)).equals(plaintext)).toBe(true);
  });

  it("rejects a chunk with one flipped bit", async () => {
    const ops = await ageKeyPair();
    const sealed = new ChunkSealer([ops.recipient]).seal(plaintext);
    sealed[sealed.length - 100]! ^= 1;
    await expect(chunkOpener([ops.identity])(sealed)).rejects.toBeInstanceOf(DecryptionError);
  });

  it("ids are keyed: the same content under another key gets another id", () => {
    const a = chunkId(Buffer.alloc(32, 1), plaintext);
    expect(chunkId(Buffer.alloc(32, 1), plaintext)).toBe(a);
    expect(chunkId(Buffer.alloc(32, 2), plaintext)).not.toBe(a);
  });
});
