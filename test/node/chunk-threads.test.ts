// The sealing worker thread (runner/repository/seal-thread.ts) behind
// ChunkWriter: what goes in comes back byte for byte through the readers, in
// the documented format (each chunk an age file at its pack offset, packs
// named by their SHA-256), damage is named by chunk, a thread that went idle
// loses nothing, and a failed upload stops the writer instead of hanging it. The repository here
// is an in-memory object store with the client's put/getRange shape: these
// are the repository-level units; the e2e tests run the same code against the
// real Worker and R2.
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ageKeyPair } from "../../runner/dev/secrets.ts";
import { IntegrityError, readChunks } from "../../runner/repository/chunk-reader.ts";
import { ChunkWriter } from "../../runner/repository/chunk-writer.ts";
import { chunkStream } from "../../runner/repository/chunker.ts";
import type { RepositoryClient } from "../../runner/repository/client.ts";
import { chunkOpener, sha256Hex } from "../../runner/repository/codec.ts";
import type { ChunkList } from "../../runner/repository/chunk-table.ts";
import { manifestPieces, readPackedManifestFile } from "../../runner/repository/manifest-file.ts";
import { ChunkStoreManifest, packKey, type ChunkRef } from "../../workers/shared/format.ts";
import { dumpStream } from "../../runner/database/plaintext.ts";
import { feed } from "../../runner/database/feed.ts";

const PREFIX = "packs/";
const ID_KEY = randomBytes(32).toString("hex");

function memoryRepo(failPut = false) {
  const objects = new Map<string, Buffer>();
  const repo = {
    async put(key: string, body: Buffer | Buffer[], sha256: string) {
      const bytes = Buffer.concat(Array.isArray(body) ? body : [body]);
      if (failPut) throw new Error("the store refused the write");
      if (sha256Hex(bytes) !== sha256) throw new Error("checksum mismatch");
      objects.set(key, Buffer.from(bytes)); // a copy: the writer reuses its pack buffers
      return { size: bytes.length, sha256 };
    },
    async get(key: string) {
      const object = objects.get(key);
      if (!object) throw new Error(`${key} missing`);
      return Buffer.from(object);
    },
    async getRange(key: string, offset: number, length: number, into?: Buffer) {
      const object = objects.get(key);
      if (!object) throw new Error(`${key} missing`);
      const range = object.subarray(offset, offset + length);
      // Into the reader's buffer when it fits, as the client does: the readers reuse their span buffers.
      return into && into.length >= range.length ? into.subarray(0, range.copy(into)) : Buffer.from(range);
    },
  };
  return { objects, repo: repo as unknown as RepositoryClient };
}

async function* pieces(data: Buffer, size = 65536) {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

async function store(repo: RepositoryClient, data: Buffer, recipient: string): Promise<ChunkRef[]> {
  const writer = new ChunkWriter(repo, PREFIX, [recipient], ID_KEY);
  for await (const chunk of chunkStream(pieces(data))) await writer.add(chunk);
  return writer.finish();
}

async function readAll(repo: RepositoryClient, refs: ChunkList, identity: string) {
  const open = chunkOpener([identity], ID_KEY);
  const out: Buffer[] = [];
  for await (const piece of readChunks(repo, PREFIX, refs, (file, ref) => open(file, ref.plain_size, ref.id))) out.push(piece);
  const bytes = Buffer.concat(out);
  return { bytes, digest: createHash("sha256").update(bytes).digest("hex") };
}

// Random (incompressible) and repeated (compressible, deduplicated) stretches: several packs.
const data = Buffer.concat([randomBytes(12 << 20), Buffer.alloc(6 << 20, 7), randomBytes(3 << 20), randomBytes(64)]);

describe("the sealing thread", () => {
  it("round-trip a stream through packs in the documented format", async () => {
    const { identity, recipient } = await ageKeyPair();
    const { objects, repo } = memoryRepo();
    const refs = await store(repo, data, recipient);
    expect(objects.size).toBeGreaterThan(1);
    for (const [key, bytes] of objects) expect(key).toBe(packKey(PREFIX, sha256Hex(bytes)));
    // Each chunk file sits at its offset, has its SHA-256, and opens with the one-chunk reader.
    const open = chunkOpener([identity], ID_KEY);
    let at = 0;
    for (const r of refs) {
      const file = objects.get(packKey(PREFIX, r.pack))!.subarray(r.offset, r.offset + r.stored_size);
      expect(sha256Hex(file)).toBe(r.stored_sha256);
      expect((await open(file, r.plain_size, r.id)).equals(data.subarray(at, at + r.plain_size))).toBe(true);
      at += r.plain_size;
    }
    expect(at).toBe(data.length);
    const back = await readAll(repo, refs, identity);
    expect(back.bytes.equals(data)).toBe(true);
    expect(back.digest).toBe(createHash("sha256").update(data).digest("hex"));
  });

  it("name a damaged chunk", async () => {
    const { identity, recipient } = await ageKeyPair();
    const { objects, repo } = memoryRepo();
    const refs = await store(repo, data, recipient);
    const victim = refs[Math.floor(refs.length / 2)]!;
    objects.get(packKey(PREFIX, victim.pack))![victim.offset + 100]! ^= 1;
    const index = refs.findIndex((r) => r === victim);
    const error = await readAll(repo, refs, identity).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IntegrityError);
    expect((error as Error).message).toBe(`chunk #${index} ${victim.id}: stored bytes do not match their SHA-256`);
  });

  it("a manifest's chunk list read back packed holds the same entries and reads back the same bytes; a bad entry is refused by index", async () => {
    const { identity, recipient } = await ageKeyPair();
    const { objects, repo } = memoryRepo();
    const refs = await store(repo, data, recipient);
    const written = manifestPieces({ backup_id: "b1", pack_prefix: PREFIX }, refs);
    await repo.put("manifests/b1.json", written.pieces, written.sha256);
    const packed = await readPackedManifestFile(repo, "manifests/b1.json", ChunkStoreManifest);
    expect(packed.backup_id).toBe("b1");
    expect([...packed.chunks]).toEqual(refs);
    expect(packed.chunks.at(-1)).toEqual(refs.at(-1));
    expect((await readAll(repo, packed.chunks, identity)).bytes.equals(data)).toBe(true);

    // A manifest written whole (before manifests were written in pieces) reads back the same.
    objects.set("manifests/whole.json", Buffer.from(JSON.stringify({ backup_id: "b1", pack_prefix: PREFIX, chunks: refs })));
    expect([...(await readPackedManifestFile(repo, "manifests/whole.json", ChunkStoreManifest)).chunks]).toEqual(refs);

    const text = Buffer.concat(written.pieces).toString("utf8");
    objects.set("manifests/bad.json", Buffer.from(text.replace(`"stored_sha256":"${refs[2]!.stored_sha256}"`, '"stored_sha256":"not hex"')));
    await expect(readPackedManifestFile(repo, "manifests/bad.json", ChunkStoreManifest)).rejects.toThrow("manifests/bad.json: chunks.2.stored_sha256:");
    objects.set("manifests/cut.json", Buffer.from(text.slice(0, text.length - 200)));
    await expect(readPackedManifestFile(repo, "manifests/cut.json", ChunkStoreManifest)).rejects.toThrow("manifests/cut.json is not JSON");
  });

  it("a sealing thread that goes idle hands over its open pack; the next new chunk starts another and nothing is lost", async () => {
    const { identity, recipient } = await ageKeyPair();
    const { repo } = memoryRepo();
    const writer = new ChunkWriter(repo, PREFIX, [recipient], ID_KEY, 300);
    const parts = [randomBytes(3 << 20), randomBytes(2 << 20), randomBytes(1 << 20)];
    for (const part of parts) {
      for await (const chunk of chunkStream(pieces(part))) await writer.add(chunk);
      await new Promise((r) => setTimeout(r, 1000)); // long enough for the thread to go idle and end
    }
    const refs = await writer.finish();
    expect(new Set(refs.map((r) => r.pack)).size).toBeGreaterThanOrEqual(parts.length);
    expect((await readAll(repo, refs, identity)).bytes.equals(Buffer.concat(parts))).toBe(true);
  });

  it("a failed upload fails the writer (no hang, no half-stored backup)", async () => {
    const { recipient } = await ageKeyPair();
    const { objects, repo } = memoryRepo(true);
    await expect(store(repo, data, recipient)).rejects.toThrow("the store refused the write");
    expect(objects.size).toBe(0);
  });
});

// The restore's side (runner/database/plaintext.ts, feed.ts): chunks decompressed
// into ~1 MiB batches that are reused once written, and, with the chunk-id key,
// stored SHA-256s hashed only to name damage.
describe("the dump stream", () => {
  const manifestOf = (refs: ChunkRef[]) => ({ pack_prefix: PREFIX, chunks: refs, dump: { sha256: createHash("sha256").update(data).digest("hex") } });

  it("fed into a child, gives the dump byte for byte while its batch buffers are reused", async () => {
    const { identity, recipient } = await ageKeyPair();
    const { repo } = memoryRepo();
    const refs = await store(repo, data, recipient);
    const cat = spawn("cat", [], { stdio: ["pipe", "pipe", "inherit"] });
    const out: Buffer[] = [];
    cat.stdout!.on("data", (d: Buffer) => out.push(d));
    const ended = new Promise((resolve) => cat.stdout!.once("end", resolve));
    const dump = dumpStream(repo, manifestOf(refs), [identity], () => {}, ID_KEY);
    const sizes: number[] = [];
    const buffers = new Set<ArrayBufferLike>();
    async function* watched() {
      for await (const piece of dump) {
        sizes.push(piece.length);
        buffers.add(piece.buffer);
        yield piece;
      }
    }
    await feed(cat, watched(), false, (piece) => dump.release(piece));
    await ended;
    expect(Buffer.concat(out).equals(data)).toBe(true);
    expect(sizes.slice(0, -1).every((n) => n >= 1 << 20)).toBe(true); // one write per MiB, not per chunk
    expect(buffers.size).toBeLessThan(sizes.length / 2); // reused, not one per batch

    // A dump smaller than a batch (a change-stream segment often is) comes out in one piece no larger than itself.
    const small = data.subarray(0, 3000);
    const smallRefs = await store(repo, small, recipient);
    const pieces: Buffer[] = [];
    const smallDump = dumpStream(repo, { ...manifestOf(smallRefs), dump: { sha256: createHash("sha256").update(small).digest("hex") } }, [identity], () => {}, ID_KEY);
    for await (const piece of smallDump) {
      pieces.push(Buffer.from(piece));
      expect(piece.buffer.byteLength).toBe(small.length + 1);
      smallDump.release(piece);
    }
    expect(Buffer.concat(pieces).equals(small)).toBe(true);
  });

  it("with the chunk-id key, a damaged chunk file is still named as damage", async () => {
    const { identity, recipient } = await ageKeyPair();
    const { objects, repo } = memoryRepo();
    const refs = await store(repo, data, recipient);
    const index = Math.floor(refs.length / 2);
    const victim = refs[index]!;
    objects.get(packKey(PREFIX, victim.pack))![victim.offset + victim.stored_size - 5]! ^= 1;
    const drain = async () => {
      for await (const _ of dumpStream(repo, manifestOf(refs), [identity], () => {}, ID_KEY));
    };
    await expect(drain()).rejects.toThrow(new IntegrityError(`chunk #${index} ${victim.id}: stored bytes do not match their SHA-256`));
  });
});
