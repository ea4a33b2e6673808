// One chunk's stored form: age(zstd(plaintext)). Each chunk is a complete age
// file, so `age -d | zstd -d` restores it with the stock tools (docs/format.md).
import { createHash, createHmac } from "node:crypto";
import { promisify } from "node:util";
import zlib from "node:zlib";
import { Decrypter, Encrypter } from "age-encryption";

export const ZSTD_LEVEL = 3;

// The async forms run on libuv's thread pool, beside the JS thread that encrypts.
const zstdCompress = promisify(zlib.zstdCompress);
const zstdDecompress = promisify(zlib.zstdDecompress);

export function chunkId(idKey: Buffer, plaintext: Uint8Array): string {
  return createHmac("sha256", idKey).update(plaintext).digest("hex");
}

export function sha256Hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

export async function sealChunk(plaintext: Uint8Array, recipients: string[]): Promise<Buffer> {
  const compressed = await zstdCompress(plaintext, { params: { [zlib.constants.ZSTD_c_compressionLevel]: ZSTD_LEVEL } });
  const encrypter = new Encrypter();
  for (const r of recipients) encrypter.addRecipient(r);
  return Buffer.from(await encrypter.encrypt(compressed));
}

export class DecryptionError extends Error {
  override name = "DecryptionError";
}

export function chunkOpener(identities: string[]): (stored: Uint8Array) => Promise<Buffer> {
  const decrypter = new Decrypter();
  for (const id of identities) decrypter.addIdentity(id);
  return async (stored) => {
    let compressed: Uint8Array;
    try {
      compressed = await decrypter.decrypt(stored);
    } catch (e) {
      throw new DecryptionError(`cannot decrypt: ${(e as Error).message}`);
    }
    return zstdDecompress(compressed);
  };
}
