import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ageKeyPair } from "../../runner/dev/secrets.ts";
import { AgeSealer, chunkId, chunkOpener, DecryptionError, sealChunk } from "../../runner/repository/codec.ts";

describe("chunk codec (zstd + age)", () => {
  const plaintext = Buffer.concat([randomBytes(100_000), Buffer.alloc(400_000, "NGC 1300 ")]);

  it("round-trips, compressing what compresses", async () => {
    const ops = await ageKeyPair();
    const sealed = await sealChunk(plaintext, new AgeSealer([ops.recipient]));
    expect(sealed.length).toBeLessThan(plaintext.length / 2);
    expect((await chunkOpener([ops.identity])(sealed)).equals(plaintext)).toBe(true);
  });

  it("with several recipients (ops key + offline escrow), either identity alone opens it", async () => {
    const [ops, escrow, stranger] = await Promise.all([ageKeyPair(), ageKeyPair(), ageKeyPair()]);
    const sealed = await sealChunk(plaintext, new AgeSealer([ops.recipient, escrow.recipient]));
    expect((await chunkOpener([ops.identity])(sealed)).equals(plaintext)).toBe(true);
    expect((await chunkOpener([escrow.identity])(sealed)).equals(plaintext)).toBe(true);
    await expect(chunkOpener([stranger.identity])(sealed)).rejects.toBeInstanceOf(DecryptionError);
  });

  it("after key rotation, one opener holding old and new identities reads old and new chunks", async () => {
    const [oldKey, newKey] = await Promise.all([ageKeyPair(), ageKeyPair()]);
    const before = await sealChunk(plaintext, new AgeSealer([oldKey.recipient]));
    const after = await sealChunk(plaintext, new AgeSealer([newKey.recipient]));
    const open = chunkOpener([newKey.identity, oldKey.identity]);
    expect((await open(before)).equals(plaintext)).toBe(true);
    expect((await open(after)).equals(plaintext)).toBe(true);
  });

  it("rejects a chunk with one flipped bit", async () => {
    const ops = await ageKeyPair();
    const sealed = await sealChunk(plaintext, new AgeSealer([ops.recipient]));
    sealed[sealed.length - 100]! ^= 1;
    await expect(chunkOpener([ops.identity])(sealed)).rejects.toBeInstanceOf(DecryptionError);
  });

  it("ids are keyed: the same content under another key gets another id", () => {
    const a = chunkId(Buffer.alloc(32, 1), plaintext);
    expect(chunkId(Buffer.alloc(32, 1), plaintext)).toBe(a);
    expect(chunkId(Buffer.alloc(32, 2), plaintext)).not.toBe(a);
  });
});
