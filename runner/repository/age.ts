// age v1 (https://age-encryption.org/v1) for chunks, on node:crypto.
//
// Why not the age-encryption package's Encrypter here: it does an X25519
// key agreement per file in JavaScript (~1.7 ms) and ChaCha20 in JavaScript
// (~90 MB/s). A 1 GB dump is ~16,000 chunks, so that alone would cost more
// than pg_dump itself. This writer makes one header (one file key, one X25519
// per recipient) per backup and gives every chunk its own random 16-byte
// payload nonce, so each chunk's payload key (HKDF of file key and nonce) is
// unique; the payload is sealed with the native ChaCha20-Poly1305. Every
// chunk is still a complete, standard age file: stock `age -d` and the
// age-encryption package decrypt it (test/node/age.test.ts checks both).
// The reader caches the file key per distinct header, so a restore does one
// X25519 per backup, not per chunk. Keys are generated and parsed as age does
// (age-encryption for key generation, bech32 from @scure/base).
import { createCipheriv, createDecipheriv, createHmac, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, randomBytes, randomFillSync, timingSafeEqual, type KeyObject } from "node:crypto";
import { bech32 } from "@scure/base";

const VERSION_LINE = "age-encryption.org/v1";
const X25519_INFO = "age-encryption.org/v1/X25519";
const STREAM_CHUNK = 64 * 1024;
const TAG = 16;

export class AgeError extends Error {
  override name = "AgeError";
}

// DER wrappers for raw X25519 keys, so node:crypto can use them.
const SPKI_PREFIX = Buffer.from("302a300506032b656e032100", "hex");
const PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");

function publicKeyObject(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: "der", type: "spki" });
}

function rawPublic(key: KeyObject): Buffer {
  return key.export({ format: "der", type: "spki" }).subarray(SPKI_PREFIX.length);
}

function decodeBech32(text: string, prefix: string): Uint8Array {
  const decoded = bech32.decodeToBytes(text.toLowerCase() as `${string}1${string}`);
  if (decoded.prefix !== prefix.toLowerCase() || decoded.bytes.length !== 32) throw new AgeError(`not an age X25519 ${prefix === "age" ? "recipient" : "identity"}`);
  return decoded.bytes;
}

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64").replace(/=+$/, "");
/**
 * HKDF-SHA-256 (RFC 5869) for a 32-byte key: one block, T(1) = HMAC(PRK,
 * info || 0x01) with PRK = HMAC(salt, ikm). Written out with createHmac
 * because hkdfSync costs about twice as much per call (it builds KeyObjects),
 * and every chunk file derives its own payload key: ~16,000 per GiB.
 */
function hkdf(ikm: Uint8Array, salt: Uint8Array, info: string): Buffer {
  const prk = createHmac("sha256", salt).update(ikm).digest();
  return createHmac("sha256", prk).update(info).update(ONE).digest();
}
const ONE = Buffer.of(1);

function chacha(key: Uint8Array, nonce: Uint8Array, data: Uint8Array): Buffer {
  const cipher = createCipheriv("chacha20-poly1305", key, nonce, { authTagLength: TAG });
  return Buffer.concat([cipher.update(data), cipher.final(), cipher.getAuthTag()]);
}

function unchacha(key: Uint8Array, nonce: Uint8Array, data: Uint8Array): Buffer | undefined {
  if (data.length < TAG) return undefined;
  const decipher = createDecipheriv("chacha20-poly1305", key, nonce, { authTagLength: TAG });
  decipher.setAuthTag(data.subarray(data.length - TAG));
  try {
    const plain = decipher.update(data.subarray(0, data.length - TAG));
    decipher.final(); // a stream cipher: nothing more comes out, but this checks the tag
    return plain;
  } catch {
    return undefined;
  }
}

function x25519(privateKey: KeyObject, publicRaw: Uint8Array): Buffer {
  const shared = diffieHellman({ privateKey, publicKey: publicKeyObject(publicRaw) });
  if (shared.every((b) => b === 0)) throw new AgeError("X25519 produced an all-zero secret");
  return shared;
}

/** Base64 stanza body in 64-column lines; the last line is always shorter than 64. */
function wrapBody(body: Uint8Array): string {
  const text = b64(body);
  const lines = text.match(/.{1,64}/g) ?? [""];
  if (lines[lines.length - 1]!.length === 64) lines.push("");
  return lines.join("\n");
}

const headerMac = (fileKey: Uint8Array, headerUpToDashes: string) =>
  createHmac("sha256", hkdf(fileKey, Buffer.alloc(0), "header")).update(headerUpToDashes).digest();

/** One header (file key wrapped to every recipient) reused by every file this sealer writes. */
export class AgeSealer {
  private readonly fileKey = randomBytes(16);
  private readonly header: Buffer;

  constructor(recipients: string[]) {
    if (recipients.length === 0) throw new AgeError("no recipients");
    let text = `${VERSION_LINE}\n`;
    for (const recipient of recipients) {
      const theirs = decodeBech32(recipient, "age");
      const ephemeral = generateKeyPairSync("x25519");
      const share = rawPublic(ephemeral.publicKey);
      const wrapKey = hkdf(x25519(ephemeral.privateKey, theirs), Buffer.concat([share, theirs]), X25519_INFO);
      text += `-> X25519 ${b64(share)}\n${wrapBody(chacha(wrapKey, Buffer.alloc(12), this.fileKey))}\n`;
    }
    text += "---";
    this.header = Buffer.from(`${text} ${b64(headerMac(this.fileKey, text))}\n`);
  }

  /** The size of the age file seal() makes of `length` bytes. */
  sealedSize(length: number): number {
    return this.header.length + 16 + length + TAG * streamChunks(length);
  }

  seal(plaintext: Uint8Array): Buffer {
    const out = Buffer.allocUnsafe(this.sealedSize(plaintext.length));
    this.sealInto(plaintext, out, 0);
    return out;
  }

  /**
   * Writes the age file of `plaintext` into `out` at `at` (sealedSize() bytes),
   * so a pack can be filled in place instead of concatenated from pieces.
   */
  sealInto(plaintext: Uint8Array, out: Buffer, at: number): number {
    let pos = at + this.header.copy(out, at);
    const nonce = out.subarray(pos, pos + 16);
    randomFillSync(nonce);
    pos += 16;
    const key = hkdf(this.fileKey, nonce, "payload");
    const count = streamChunks(plaintext.length);
    const streamNonce = Buffer.alloc(12);
    for (let i = 0; i < count; i++) {
      streamNonce.writeUIntBE(i, 5, 6); // 11-byte big-endian counter (6 bytes used), then the last-chunk flag
      if (i === count - 1) streamNonce[11] = 1;
      const cipher = createCipheriv("chacha20-poly1305", key, streamNonce, { authTagLength: TAG });
      pos += cipher.update(plaintext.subarray(i * STREAM_CHUNK, (i + 1) * STREAM_CHUNK)).copy(out, pos);
      pos += cipher.final().copy(out, pos);
      pos += cipher.getAuthTag().copy(out, pos);
    }
    return pos - at;
  }
}

/** STREAM chunks of a payload: at least one, even for an empty file. */
const streamChunks = (length: number) => Math.max(1, Math.ceil(length / STREAM_CHUNK));

/** Opens age files with X25519 identities; remembers each distinct header's file key. */
export class AgeOpener {
  private readonly identities: { privateKey: KeyObject; publicRaw: Buffer }[];
  private readonly fileKeys = new Map<string, Buffer>();

  constructor(identities: string[]) {
    this.identities = identities.map((identity) => {
      const raw = decodeBech32(identity, "AGE-SECRET-KEY-");
      const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, raw]), format: "der", type: "pkcs8" });
      return { privateKey, publicRaw: rawPublic(createPublicKey(privateKey)) };
    });
  }

  open(file: Uint8Array): Buffer {
    const data = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
    const end = data.indexOf("\n---");
    const lineEnd = end < 0 ? -1 : data.indexOf("\n", end + 4);
    if (end < 0 || lineEnd < 0) throw new AgeError("not an age file: no header end");
    const headerText = data.subarray(0, lineEnd + 1).toString("latin1");
    let fileKey = this.fileKeys.get(headerText);
    if (!fileKey) {
      fileKey = this.unwrap(headerText);
      this.fileKeys.set(headerText, fileKey);
    }
    return this.decryptPayload(fileKey, data.subarray(lineEnd + 1));
  }

  private unwrap(headerText: string): Buffer {
    const lines = headerText.split("\n");
    if (lines[0] !== VERSION_LINE) throw new AgeError("not an age v1 file");
    const macLine = lines[lines.length - 2]!;
    const upToDashes = headerText.slice(0, headerText.length - macLine.length - 1) + "---";
    let fileKey: Buffer | undefined;
    for (let i = 1; i < lines.length - 2 && !fileKey; i++) {
      const args = lines[i]!.split(" ");
      if (args[0] !== "->" || args[1] !== "X25519" || !args[2]) continue;
      let bodyText = "";
      while (lines[i + 1] !== undefined && !lines[i + 1]!.startsWith("->") && !lines[i + 1]!.startsWith("---")) {
        bodyText += lines[++i];
        if (lines[i]!.length < 64) break;
      }
      fileKey = this.tryStanza(Buffer.from(args[2], "base64"), Buffer.from(bodyText, "base64"));
    }
    if (!fileKey) throw new AgeError("no identity matches any recipient of this file");
    const mac = Buffer.from(macLine.slice(4), "base64");
    const expected = headerMac(fileKey, upToDashes);
    if (mac.length !== expected.length || !timingSafeEqual(mac, expected)) throw new AgeError("header MAC does not match");
    return fileKey;
  }

  private tryStanza(share: Buffer, body: Buffer): Buffer | undefined {
    if (share.length !== 32 || body.length !== 32) return undefined;
    for (const id of this.identities) {
      const wrapKey = hkdf(x25519(id.privateKey, share), Buffer.concat([share, id.publicRaw]), X25519_INFO);
      const fileKey = unchacha(wrapKey, Buffer.alloc(12), body);
      if (fileKey) return fileKey;
    }
    return undefined;
  }

  private decryptPayload(fileKey: Buffer, payload: Buffer): Buffer {
    if (payload.length < 16 + TAG) throw new AgeError("payload too short");
    const key = hkdf(fileKey, payload.subarray(0, 16), "payload");
    const body = payload.subarray(16);
    const size = STREAM_CHUNK + TAG;
    const count = Math.max(1, Math.ceil(body.length / size));
    const parts: Buffer[] = [];
    for (let i = 0; i < count; i++) {
      const nonce = Buffer.alloc(12);
      nonce.writeUIntBE(i, 5, 6);
      if (i === count - 1) nonce[11] = 1;
      const plain = unchacha(key, nonce, body.subarray(i * size, (i + 1) * size));
      if (!plain) throw new AgeError(`payload chunk ${i} does not authenticate`);
      if (plain.length === 0 && count > 1) throw new AgeError("empty final chunk");
      parts.push(plain);
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }
}
