// Reads a manifest's chunks back in order. Chunks that sit next to each other
// in the same pack are fetched with one range request (a full backup reads
// each pack about once), a bounded number of ranges ahead of the consumer.
// Every chunk file's size and SHA-256 are checked against the manifest before
// anything else touches it, unless the caller's transform authenticates each
// chunk itself (see readChunks' `checkStored`).
import { PACK_TARGET_SIZE, packKey, type ChunkRef } from "../../workers/shared/format.ts";
import { sha256Hex } from "./codec.ts";
import { AppError } from "../../workers/shared/errors.ts";
import type { RepositoryClient } from "./client.ts";
import type { ChunkList } from "./chunk-table.ts";

/** Stored bytes that do not decode to what the manifest promised: the backup is damaged, retrying will not help. */
export class IntegrityError extends AppError {
  override name = "IntegrityError";
  constructor(message: string) {
    super("integrity_error", message);
  }
}

/** Consecutive chunks (manifest order) stored back to back in one pack: chunks first .. first + count - 1. */
interface Span {
  pack: string;
  offset: number;
  length: number;
  first: number;
  count: number;
}

/** A span with its chunks' entries, made only when the span is read: a packed list stays packed meanwhile. */
interface ReadSpan extends Span {
  chunks: ChunkRef[];
}

function withChunks(list: ChunkList, span: Span): ReadSpan {
  return { ...span, chunks: Array.from({ length: span.count }, (_, i) => list.at(span.first + i)!) };
}

/**
 * A span may cover a whole pack (packs are cut once they reach
 * PACK_TARGET_SIZE, plus at most one chunk file): a full restore then reads
 * each pack with one request, half as many as with 4 MiB spans, for the
 * same bytes. Memory is bounded by readChunks' prefetch.
 */
const MAX_SPAN = 2 * PACK_TARGET_SIZE;

export function spans(chunks: ChunkList): Span[] {
  const out: Span[] = [];
  let current: Span | undefined;
  let index = 0;
  for (const c of chunks) {
    const adjacent = current && current.pack === c.pack && current.offset + current.length === c.offset && current.length + c.stored_size <= MAX_SPAN;
    if (adjacent) {
      current!.length += c.stored_size;
      current!.count++;
    } else {
      current = { pack: c.pack, offset: c.offset, length: c.stored_size, first: index, count: 1 };
      out.push(current);
    }
    index++;
  }
  return out;
}

const chunkName = (span: ReadSpan, i: number) => `chunk #${span.first + i} ${span.chunks[i]!.id}`;

/** The span's bytes; a pack that is missing, unreadable or short is an integrity problem. */
async function spanBytes(repo: RepositoryClient, prefix: string, span: Span, into?: Buffer): Promise<Buffer> {
  let bytes: Buffer;
  try {
    bytes = await repo.getRange(packKey(prefix, span.pack), span.offset, span.length, into);
  } catch (e) {
    const damaged = e instanceof AppError && (e.code === "object_missing" || e.code === "object_unreadable");
    if (damaged) throw new IntegrityError(`pack ${span.pack} ${e.code === "object_missing" ? "missing" : "unreadable"}`);
    throw e;
  }
  if (bytes.length !== span.length) throw new IntegrityError(`pack ${span.pack} is shorter than the manifest says`);
  return bytes;
}

const storedProblem = (file: Buffer, span: ReadSpan, i: number) =>
  sha256Hex(file) === span.chunks[i]!.stored_sha256 ? undefined : `${chunkName(span, i)}: stored bytes do not match their SHA-256`;

/** Splits a span's bytes into chunk files, checking each against its SHA-256 when `check` is set. */
function chunkFiles(bytes: Buffer, span: ReadSpan, check = true): { file: Buffer; problem?: string }[] {
  let at = 0;
  return span.chunks.map((c, i) => {
    const file = bytes.subarray(at, at + c.stored_size);
    at += c.stored_size;
    const problem = check ? storedProblem(file, span, i) : undefined;
    return problem ? { file, problem } : { file };
  });
}

/** The chunk files of one span (checked when `check` is set: the first damaged one throws, naming the chunk). */
async function fetchSpan(repo: RepositoryClient, prefix: string, span: ReadSpan, check: boolean, into: Buffer): Promise<Buffer[]> {
  let bytes: Buffer;
  try {
    bytes = await spanBytes(repo, prefix, span, into);
  } catch (e) {
    throw e instanceof IntegrityError ? new IntegrityError(`${chunkName(span, 0)}: ${e.message}`) : e;
  }
  return chunkFiles(bytes, span, check).map(({ file, problem }) => {
    if (problem) throw new IntegrityError(problem);
    return file;
  });
}

/** Every problem in one span, one line per damaged chunk (for verify, which reports all damage). */
export async function checkSpan(repo: RepositoryClient, prefix: string, list: ChunkList, plain: Span): Promise<string[]> {
  const span = withChunks(list, plain);
  try {
    return chunkFiles(await spanBytes(repo, prefix, span), span).flatMap((c) => (c.problem ? [c.problem] : []));
  } catch (e) {
    if (!(e instanceof IntegrityError)) throw e;
    return span.chunks.map((_, i) => `${chunkName(span, i)}: ${e.message}`);
  }
}

/**
 * Yields transform(chunk file) for every chunk in manifest order. Up to
 * `prefetch` spans (each at most a pack) are fetched ahead of the consumer;
 * each chunk file is transformed only when the consumer reaches it, so memory
 * is those spans' stored bytes and one chunk's output, whatever the backup's size.
 * The spans are read into a few reused buffers (a full restore would otherwise
 * allocate a new ~8 MiB Buffer per pack, each page of it faulted in afresh):
 * transform's result must not be a view of the chunk file it was given.
 *
 * `checkStored: false` skips the up-front SHA-256 of each chunk file and
 * hashes it only when transform throws, so that damage is still reported as
 * damage ("stored bytes do not match") rather than as whatever transform
 * said. Only for a transform that authenticates every chunk against the
 * manifest itself: decrypting (age's AEAD fails on any change to the bytes)
 * and then checking the plaintext's keyed id, which nobody without the chunk
 * id key can forge (docs/format.md, "Integrity checks").
 */
export async function* readChunks<T>(
  repo: RepositoryClient, prefix: string, chunks: ChunkList, transform: (file: Buffer, ref: ChunkRef, index: number) => Promise<T>,
  { prefetch = 2, checkStored = true }: { prefetch?: number; checkStored?: boolean } = {},
): AsyncGenerator<T> {
  const all = spans(chunks);
  const window: { span: ReadSpan; files: Promise<Buffer[]>; into: Buffer }[] = [];
  const spare: Buffer[] = [];
  const size = all.reduce((max, s) => Math.max(max, s.length), 0);
  let next = 0;
  const launch = () => {
    const span = withChunks(chunks, all[next++]!);
    const into = spare.pop() ?? Buffer.allocUnsafe(size);
    const files = fetchSpan(repo, prefix, span, checkStored, into);
    files.catch(() => {}); // surfaced in order when the consumer reaches it
    window.push({ span, files, into });
  };
  while (next < all.length && window.length < prefetch) launch();
  while (window.length > 0) {
    const { span, files, into } = window.shift()!;
    const stored = await files;
    if (next < all.length) launch();
    for (let i = 0; i < stored.length; i++) {
      let out: T;
      try {
        out = await transform(stored[i]!, span.chunks[i]!, span.first + i);
      } catch (e) {
        const problem = checkStored ? undefined : storedProblem(stored[i]!, span, i);
        throw problem ? new IntegrityError(problem) : e;
      }
      yield out;
    }
    spare.push(into); // the consumer has moved past this span's chunks
  }
}
