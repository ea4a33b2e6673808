// A backup's plaintext in manifest order, opened on a worker thread
// (open-thread.ts): this thread fetches packs (a bounded number of spans
// ahead) and passes slices of them to the thread, which checks, decrypts and
// decompresses them while the consumer is still busy with the slice before.
// Memory stays bounded whatever the backup's size: the prefetched spans, two
// slices at the thread, and the slice being consumed.
import { Worker } from "node:worker_threads";
import { CHUNKER, type ChunkRef } from "../../workers/shared/format.ts";
import type { RepositoryClient } from "./client.ts";
import { fetchSpanBytes, IntegrityError, spans, type Span } from "./chunk-reader.ts";
import type { ChunkToOpen, FromOpener, OpenThreadConfig, ToOpener } from "./open-thread.ts";

/** Stored bytes per slice handed to the thread: a few chunks, so the consumer gets plaintext early and often. */
const SLICE_BYTES = 512 * 1024;
/** Slices at the thread and not yet consumed: one being opened, one waiting. */
const SLICES_IN_FLIGHT = 2;

/**
 * Yields the plaintext of `chunks` in order, in pieces of up to a slice;
 * each chunk's stored SHA-256, decryption, size and (with the key) keyed id
 * are checked first (IntegrityError names the chunk). Once every piece is
 * yielded, `digest` hears the SHA-256 of them all.
 */
export async function* readPlaintext(
  repo: RepositoryClient, prefix: string, chunks: ChunkRef[], identities: string[], chunkIdKey: string | undefined,
  digest: (sha256: string) => void, prefetch = 1,
): AsyncGenerator<Buffer> {
  const config: OpenThreadConfig = { identities, ...(chunkIdKey ? { chunkIdKey } : {}) };
  const thread = new Worker(new URL("./open-thread.ts", import.meta.url), { workerData: config, resourceLimits: THREAD_LIMITS });
  thread.unref();
  const results: FromOpener[] = [];
  let wake: (() => void) | undefined;
  let crashed: Error | undefined;
  const arrived = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  thread.on("message", (m: FromOpener) => {
    results.push(m);
    arrived();
  });
  thread.on("error", (e) => {
    crashed ??= e;
    arrived();
  });
  thread.on("exit", (code) => {
    crashed ??= new Error(`the opening thread exited (${code})`);
    arrived();
  });
  const next = async (): Promise<FromOpener> => {
    while (results.length === 0) {
      if (crashed) throw crashed;
      await new Promise<void>((resolve) => (wake = resolve));
    }
    const m = results.shift()!;
    if (m.type === "failed") throw m.integrity ? new IntegrityError(m.message) : new Error(`opening chunks failed: ${m.message}`);
    return m;
  };
  let inFlight = 0;
  const send = (m: ToOpener, transfer: ArrayBuffer[] = []) => thread.postMessage(m, transfer);
  // Input slices come back with their plaintext and are reused: one allocation per slice size, not per slice.
  const spare: Buffer[] = [];
  const opened = (m: Extract<FromOpener, { type: "opened" }>) => {
    if (m.input.byteLength === SLICE_CAPACITY) spare.push(Buffer.from(m.input));
    return Buffer.from(m.output);
  };

  const all = spans(chunks);
  const window: Promise<Buffer>[] = [];
  let fetched = 0;
  const launch = () => {
    const bytes = fetchSpanBytes(repo, prefix, all[fetched++]!);
    bytes.catch(() => {}); // surfaced in order when its turn comes
    window.push(bytes);
  };
  try {
    while (fetched < all.length && window.length < prefetch) launch();
    for (const span of all) {
      const bytes = await window.shift()!;
      if (fetched < all.length) launch();
      for (const slice of slices(span)) {
        // A copy of the slice goes to the thread; the span's buffer stays here until its last slice is copied.
        const input = slice.length <= SLICE_CAPACITY ? (spare.pop() ?? Buffer.allocUnsafeSlow(SLICE_CAPACITY)) : Buffer.allocUnsafeSlow(slice.length);
        bytes.copy(input, 0, slice.offset, slice.offset + slice.length);
        send({ type: "open", input: input.buffer as ArrayBuffer, first: span.first + slice.from, chunks: slice.chunks }, [input.buffer as ArrayBuffer]);
        if (++inFlight >= SLICES_IN_FLIGHT) {
          const m = await next();
          inFlight--;
          if (m.type === "opened") yield opened(m);
        }
      }
    }
    for (; inFlight > 0; inFlight--) {
      const m = await next();
      if (m.type === "opened") yield opened(m);
    }
    send({ type: "end" });
    const last = await next();
    if (last.type !== "digest") throw new Error(`opening thread: expected the digest, got ${last.type}`);
    digest(last.sha256);
  } finally {
    thread.removeAllListeners("exit");
    void thread.terminate();
  }
}

/** A reused input slice: room for a slice that reaches SLICE_BYTES with its last chunk (at most max_size stored, plus the age overhead). */
const SLICE_CAPACITY = SLICE_BYTES + 2 * CHUNKER.max_size;

/**
 * The threads' V8 heaps: they hold a few small objects at a time (the bytes
 * are ArrayBuffers outside the heap), so a small young generation keeps the
 * runner's resident memory down, as --max-semi-space-size=1 does for the main thread.
 */
export const THREAD_LIMITS = { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32 };

/** A span cut at chunk boundaries into slices of about SLICE_BYTES stored bytes (offsets within the span). */
function slices(span: Span): { offset: number; length: number; from: number; chunks: ChunkToOpen[] }[] {
  const out: { offset: number; length: number; from: number; chunks: ChunkToOpen[] }[] = [];
  let at = 0;
  span.chunks.forEach((c, i) => {
    let current = out[out.length - 1];
    if (!current || current.length >= SLICE_BYTES) {
      current = { offset: at, length: 0, from: i, chunks: [] };
      out.push(current);
    }
    current.chunks.push({ id: c.id, plain_size: c.plain_size, stored_size: c.stored_size, stored_sha256: c.stored_sha256 });
    current.length += c.stored_size;
    at += c.stored_size;
  });
  return out;
}
