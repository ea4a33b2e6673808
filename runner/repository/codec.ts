// One chunk's stored form: age(zstd(plaintext)). Each chunk is a complete age
// file, so `age -d | zstd -d` restores it with the stock tools (docs/format.md).
import { createHash, createHmac } from "node:crypto";
import { AgeOpener, AgeSealer } from "./age.ts";
import { maxFrameSize, FrameCompressor, FrameDecompressor } from "./zstd.ts";

export { AgeSealer };

// Level 1, by measurement (bench/pipeline-stages.ts on pg_dump -Fc -Z0 output
// of the astronomy catalog): the same ratio as level 3 (1.94x vs 1.95x) at
// well under half the CPU. Readers do not depend on it (docs/format.md).
export const ZSTD_LEVEL = 1;

/** The keyed id of a chunk, given whole or as the pieces it was read in (chunkPieces). */
export function chunkId(idKey: Buffer, plaintext: Uint8Array | readonly Uint8Array[]): string {
  const hmac = createHmac("sha256", idKey);
  if (plaintext instanceof Uint8Array) hmac.update(plaintext);
  else for (const piece of plaintext) hmac.update(piece);
  return hmac.digest("hex");
}

export function sha256Hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * zstd, then age to the recipients (one age header per sealer: see age.ts).
 * Owns one compression context for all the chunks it seals, so it is used by
 * one backup at a time and never shared between concurrent callers.
 */
export class ChunkSealer {
  private readonly age: AgeSealer;
  private readonly zstd = new FrameCompressor(ZSTD_LEVEL);
  constructor(recipients: string[]) {
    this.age = new AgeSealer(recipients);
  }

  /** An upper bound on the stored size of a chunk of `length` plaintext bytes. */
  maxSealedSize(length: number): number {
    return this.age.sealedSize(maxFrameSize(length));
  }

  /** Seals `plaintext` into `out` at `at`; returns the stored size. `out` needs maxSealedSize() bytes there. */
  sealInto(plaintext: Uint8Array, out: Buffer, at: number): number {
    return this.age.sealInto(this.zstd.compress(plaintext), out, at);
  }

  seal(plaintext: Uint8Array): Buffer {
    return this.age.seal(this.zstd.compress(plaintext));
  }
}

export class DecryptionError extends Error {
  override name = "DecryptionError";
}

/**
 * Opens chunk files: age, then zstd. With the chunk's plain_size the frame is
 * decompressed into a buffer of exactly that size by a reused context, and a
 * frame of any other size is refused. With the chunk-id key and the chunk's
 * id, the plaintext must be what the id names: the age recipients are public,
 * so anyone able to write to R2 could otherwise plant a chunk that decrypts.
 */
export function chunkOpener(identities: string[], chunkIdKey?: string): (stored: Uint8Array, plainSize?: number, id?: string, into?: Buffer) => Promise<Buffer> {
  const opener = new AgeOpener(identities);
  const zstd = new FrameDecompressor();
  const idKey = chunkIdKey ? Buffer.from(chunkIdKey, "hex") : undefined;
  // `into` (plainSize + 1 bytes): where the plaintext goes instead of a new Buffer (FrameDecompressor.decompress).
  return async (stored, plainSize, id, into) => {
    let compressed: Buffer;
    try {
      compressed = opener.open(stored);
    } catch (e) {
      throw new DecryptionError(`cannot decrypt: ${(e as Error).message}`);
    }
    const plain = zstd.decompress(compressed, plainSize, into);
    if (idKey && id !== undefined && chunkId(idKey, plain) !== id) throw new DecryptionError("its keyed id does not match its plaintext");
    return plain;
  };
}
