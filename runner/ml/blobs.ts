// The blobs of an ML backup (workers/shared/format.ts, docs/ml.md): byte
// streams cut into content-defined chunks and stored through the same
// ChunkWriter (packs, zstd, age) as database dumps. Writers may run
// concurrently: each blob keeps the indices of its own chunks. Readers
// decrypt a blob's chunks in order and check its size and SHA-256.
import { createHash } from "node:crypto";
import { readManifestFile } from "../repository/manifest-file.ts";
import {
  CHUNKER, FORMAT_VERSION, mlDigestInput, mlManifestKey, MlManifest, type ChunkRef, type MlBlob, SHARED_PACK_PREFIX,
} from "../../workers/shared/format.ts";
import type { MlBackupResult } from "../../workers/ml/protocol.ts";
import { readChunks, IntegrityError } from "../repository/chunk-reader.ts";
import { ChunkWriter } from "../repository/chunk-writer.ts";
import { StreamSplitter } from "../repository/chunker.ts";
import type { RepositoryClient } from "../repository/client.ts";
import { chunkOpener, sha256Hex, ZSTD_LEVEL } from "../repository/codec.ts";
import { AppError } from "../../workers/shared/errors.ts";

export type BlobMeta = Omit<MlBlob, "size" | "sha256" | "chunks">;


export class BlobWriter {
  readonly blobs: MlBlob[] = [];
  readonly writer: ChunkWriter;
  logical = 0;
  private readonly repo: RepositoryClient;
  constructor(repo: RepositoryClient, job: { recipients: string[]; chunk_id_key: string }) {
    this.repo = repo;
    this.writer = new ChunkWriter(repo, SHARED_PACK_PREFIX, job.recipients, job.chunk_id_key);
  }

  /** References the parent backup's chunks (database or ML manifest alike) so unchanged content costs no upload. */
  async knowParent(key: string | undefined): Promise<void> {
    if (!key) return;
    try {
      const parent = MlManifest.parse(JSON.parse((await this.repo.get(key)).toString("utf8")));
      this.writer.know(parent.chunks, parent.encryption.recipients);
    } catch (e) {
      console.warn(`parent manifest ${key} unusable, backing up without it: ${(e as Error).message}`);
    }
  }

  /** Stores a whole stream as one blob. */
  async stream(meta: BlobMeta, source: AsyncIterable<Uint8Array>, onBytes: (n: number) => void = () => {}): Promise<MlBlob> {
    const blob = this.open(meta);
    for await (const part of source) {
      await blob.write(part);
      onBytes(part.length);
    }
    return blob.close();
  }

  /** A blob written piece by piece (NDJSON records via `record`). */
  open(meta: BlobMeta): OpenBlob {
    return new OpenBlob(this, meta);
  }

  async finish(): Promise<ChunkRef[]> {
    return this.writer.finish();
  }
}

export class OpenBlob {
  private readonly splitter = new StreamSplitter(CHUNKER);
  private readonly hash = createHash("sha256");
  private readonly chunks: number[] = [];
  private size = 0;
  private readonly owner: BlobWriter;
  private readonly meta: BlobMeta;
  constructor(owner: BlobWriter, meta: BlobMeta) {
    this.owner = owner;
    this.meta = meta;
  }

  async write(data: Uint8Array): Promise<void> {
    this.hash.update(data);
    this.size += data.length;
    for (const chunk of this.splitter.push(data)) this.chunks.push(await this.owner.writer.add(chunk));
  }

  record(value: unknown): Promise<void> {
    return this.write(Buffer.from(`${JSON.stringify(value)}\n`));
  }

  async close(): Promise<MlBlob> {
    for (const chunk of this.splitter.end()) this.chunks.push(await this.owner.writer.add(chunk));
    const blob: MlBlob = { ...this.meta, size: this.size, sha256: this.hash.digest("hex"), chunks: this.chunks };
    this.owner.blobs.push(blob);
    this.owner.logical += this.size;
    return blob;
  }
}

/** Writes the manifest last (a backup without one is unfinished) and returns the job result. */
export async function writeMlManifest(
  repo: RepositoryClient, store: BlobWriter,
  m: Pick<MlManifest, "format" | "backup_id" | "source" | "scope" | "counts" | "linked_runs">,
  job: { recipients: string[] }, started: Date, kind: MlBackupResult["kind"],
): Promise<MlBackupResult> {
  const chunks = await store.finish();
  const stats = store.writer.stats;
  const finished = new Date();
  const manifest = MlManifest.parse({
    ...m, format_version: FORMAT_VERSION, created_at: started.toISOString(), finished_at: finished.toISOString(),
    digest: sha256Hex(Buffer.from(mlDigestInput(store.blobs))), logical_bytes: store.logical,
    compression: { algorithm: "zstd", level: ZSTD_LEVEL }, encryption: { scheme: "age-x25519", recipients: job.recipients },
    chunker: CHUNKER, pack_prefix: SHARED_PACK_PREFIX, blobs: store.blobs, chunks,
    stats: { stored_bytes: stats.stored_bytes, new_stored_bytes: stats.new_stored_bytes, new_chunks: stats.new_chunks },
  });
  const body = Buffer.from(JSON.stringify(manifest));
  const key = mlManifestKey(m.backup_id);
  await repo.put(key, body, sha256Hex(body));
  return {
    kind, backup_id: m.backup_id, manifest_key: key, logical_bytes: manifest.logical_bytes, stored_bytes: stats.stored_bytes,
    new_stored_bytes: stats.new_stored_bytes, chunk_count: chunks.length, new_chunk_count: stats.new_chunks, sha256: manifest.digest,
    started_at: started.toISOString(), finished_at: finished.toISOString(), duration_ms: finished.getTime() - started.getTime(),
    counts: m.counts,
  };
}

export async function readMlManifest(repo: RepositoryClient, key: string): Promise<MlManifest> {
  const m = await readManifestFile(repo, key, MlManifest);
  for (const b of m.blobs) {
    if (b.chunks.some((i) => i >= m.chunks.length)) throw new AppError("manifest_invalid", `${key}: blob ${b.name} names a chunk that is not listed`);
    const total = b.chunks.reduce((sum, i) => sum + m.chunks[i]!.plain_size, 0);
    if (total !== b.size) throw new AppError("manifest_invalid", `${key}: blob ${b.name}'s chunks add up to ${total} bytes, it had ${b.size}`);
  }
  return m;
}

/** A blob's bytes in order: every chunk checked and decrypted, the whole checked against the blob's SHA-256 at the end. */
export async function* blobBytes(repo: RepositoryClient, manifest: MlManifest, blob: MlBlob, open: ReturnType<typeof chunkOpener>): AsyncGenerator<Buffer> {
  const refs = blob.chunks.map((i) => manifest.chunks[i]!);
  const hash = createHash("sha256");
  const plain = readChunks(repo, manifest.pack_prefix, refs, async (stored, ref) => {
    let out: Buffer;
    try {
      out = await open(stored, ref.plain_size, ref.id);
    } catch (e) {
      throw new IntegrityError(`${blob.kind} ${blob.name}, chunk ${ref.id}: ${(e as Error).message}`);
    }
    if (out.length !== ref.plain_size) throw new IntegrityError(`${blob.kind} ${blob.name}, chunk ${ref.id}: wrong size after decryption`);
    return out;
  });
  for await (const part of plain) {
    hash.update(part);
    yield part;
  }
  if (hash.digest("hex") !== blob.sha256) throw new IntegrityError(`${blob.kind} ${blob.name}: SHA-256 differs from the manifest's`);
}

/** The records of an NDJSON blob, parsed one line at a time. */
export async function* blobRecords(repo: RepositoryClient, manifest: MlManifest, blob: MlBlob, open: ReturnType<typeof chunkOpener>): AsyncGenerator<any> {
  let rest = "";
  const decoder = new TextDecoder();
  for await (const part of blobBytes(repo, manifest, blob, open)) {
    rest += decoder.decode(part, { stream: true });
    const lines = rest.split("\n");
    rest = lines.pop()!;
    for (const line of lines) if (line) yield JSON.parse(line);
  }
  rest += decoder.decode();
  if (rest) yield JSON.parse(rest);
}
