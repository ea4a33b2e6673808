// Storage format 2: what the backup bucket (and so the off-site copy, which
// copies it byte for byte) holds of AstrID's objects is unreadable without an
// age identity, and its names say nothing about the content.
//
// - A blob is age(object bytes) to the BACKUP_ENCRYPTION_KEY recipients,
//   encrypted as a stream (age-encryption's STREAM, 64 KiB chunks: memory
//   stays bounded whatever the object's size).
// - It lives at storage/blobs/<a[0:2]>/<a> with a = HMAC-SHA256(CHUNK_ID_KEY,
//   "astrid-storage-blob:" + sha256 of the bytes), in hex. Equal content gets
//   one address (dedup by content, across snapshots, keys and the version
//   store) but, without the key, an address cannot be matched to a known
//   file's SHA-256. The address derives from the SHA-256 (not straight from
//   the bytes) so the version store's rows, which hold the SHA-256, name
//   their blob without a schema change.
// - A snapshot part lists its entries encrypted (entries_age), next to the
//   plain list of their blob addresses (`blobs`, parallel to the entries) that
//   garbage collection marks from without any identity.
// - A blob records a tag of the recipients it was encrypted to; it is reused
//   only while the recipients are the same, so after BACKUP_ENCRYPTION_KEY
//   changes, a new snapshot re-encrypts what it references (the retired
//   identity cannot read it).
import { Decrypter, Encrypter } from "age-encryption";
import type { BackupConfig } from "../config.ts";
import type { Env } from "../env.ts";
import { ageIdentities, requireSecret } from "../jobs/dispatch.ts";
import { toHex } from "../crypto.ts";
import { AppError } from "../shared/errors.ts";

/** Custom metadata on a format-2 blob: which recipients it is encrypted to (a tag, not the keys). */
export const RECIPIENTS_META = "astrid-recipients";
const ADDRESS_PREFIX = "astrid-storage-blob:";

export interface BlobSealing {
  recipients: string[];
  recipientsTag: string;
  address(sha256: string): Promise<string>;
}

function hexBytes(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));
}

/** The keyed address of the bytes whose SHA-256 is `sha256` (see above; docs/format.md shows it with openssl). */
export async function addressKey(chunkIdKey: string): Promise<(sha256: string) => Promise<string>> {
  const key = await crypto.subtle.importKey("raw", hexBytes(chunkIdKey), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const encoder = new TextEncoder();
  return async (sha256) => toHex(await crypto.subtle.sign("HMAC", key, encoder.encode(`${ADDRESS_PREFIX}${sha256}`)));
}

export async function recipientsTag(recipients: string[]): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode([...recipients].sort().join("\n")));
  return toHex(digest).slice(0, 16);
}

/** What writing and naming format-2 blobs needs: the recipients and the chunk-id key (no identity). */
export async function blobSealing(env: Env, config: BackupConfig): Promise<BlobSealing> {
  const recipients = config.encryption_recipients;
  return {
    recipients, recipientsTag: await recipientsTag(recipients), address: await addressKey(requireSecret(env.CHUNK_ID_KEY, "CHUNK_ID_KEY")),
  };
}

function encrypter(recipients: string[]): Encrypter {
  const e = new Encrypter();
  for (const r of recipients) e.addRecipient(r);
  return e;
}

function decrypter(identities: string[]): Decrypter {
  const d = new Decrypter();
  for (const i of identities) d.addIdentity(i);
  return d;
}

/** age(plaintext) as a stream, and its exact length (R2 wants to know it). */
export async function encryptStream(recipients: string[], plaintext: ReadableStream<Uint8Array>, size: number): Promise<{ stream: ReadableStream<Uint8Array>; size: number }> {
  const stream = await encrypter(recipients).encrypt(plaintext);
  return { stream, size: stream.size(size) };
}

export async function encryptBytes(recipients: string[], plaintext: Uint8Array): Promise<Uint8Array> {
  return encrypter(recipients).encrypt(plaintext);
}

/** The plaintext of an age stream; every 64 KiB chunk is authenticated as it passes, a truncation fails at the end. */
export async function decryptStream(identities: string[], ciphertext: ReadableStream<Uint8Array>): Promise<ReadableStream<Uint8Array>> {
  return cannotDecrypt(() => decrypter(identities).decrypt(ciphertext));
}

/** A header no identity opens (or a malformed identity) will not open on a retry either: the job fails at once. */
async function cannotDecrypt<T>(open: () => Promise<T>): Promise<T> {
  try {
    return await open();
  } catch (e) {
    throw new AppError("decrypt_failed", `cannot decrypt with AGE_IDENTITY: ${(e as Error).message}`);
  }
}

/** The Worker's age identities (AGE_IDENTITY): reading format-2 parts and blobs needs them. */
export const workerIdentities = (env: Env) => ageIdentities(env);

function toBase64(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

/** A part's entries, as base64 of an age file (break-glass: `base64 -d | age -d`). */
export async function sealJson(recipients: string[], value: unknown): Promise<string> {
  return toBase64(await encryptBytes(recipients, new TextEncoder().encode(JSON.stringify(value))));
}

export async function openJson(identities: string[], sealed: string): Promise<unknown> {
  const bytes = Uint8Array.from(atob(sealed), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(await cannotDecrypt(() => decrypter(identities).decrypt(bytes))));
}
