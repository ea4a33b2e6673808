// The opening half of a restore, on a worker thread: for each group of chunk
// files (a slice of a pack, in manifest order) check the stored SHA-256,
// decrypt (age), decompress (zstd, to the exact size), check the keyed id,
// and hand back the plaintexts back to back; the SHA-256 of everything handed
// back comes at the end. The main thread only fetches packs and feeds the
// consumer (pg_restore), so the consumer is fed while the next group is opened.
//
// Messages (one reader, one thread; all in order):
//   in:  open {input, first, chunks}  chunk files back to back (transferred); `first` is the first chunk's index in the manifest
//        end                          no more groups: say the digest
//   out: opened {input, output}       the group's plaintexts back to back (transferred), and the input back for reuse
//        digest {sha256}
//        failed {message, integrity}  integrity: the stored bytes are damaged (retrying will not help)
import { createHash } from "node:crypto";
import { parentPort, workerData } from "node:worker_threads";
import { chunkOpener, sha256Hex } from "./codec.ts";

export interface OpenThreadConfig {
  identities: string[];
  /** With it, every chunk must be the plaintext its keyed id names. */
  chunkIdKey?: string;
}

export interface ChunkToOpen {
  id: string;
  plain_size: number;
  stored_size: number;
  stored_sha256: string;
}

export type ToOpener = { type: "open"; input: ArrayBuffer; first: number; chunks: ChunkToOpen[] } | { type: "end" };
export type FromOpener =
  | { type: "opened"; input: ArrayBuffer; output: ArrayBuffer }
  | { type: "digest"; sha256: string }
  | { type: "failed"; message: string; integrity: boolean };

class Damaged extends Error {}

if (parentPort) {
  const port = parentPort;
  const config = workerData as OpenThreadConfig;
  const open = chunkOpener(config.identities, config.chunkIdKey);
  const hash = createHash("sha256");
  let failed = false;
  // Messages are handled one after another: each waits for the one before it.
  let queue: Promise<void> = Promise.resolve();
  const handle = async (m: ToOpener) => {
    if (failed) return;
    if (m.type === "end") {
      port.postMessage({ type: "digest", sha256: hash.digest("hex") } satisfies FromOpener);
      return;
    }
    const input = Buffer.from(m.input);
    const output = Buffer.allocUnsafeSlow(m.chunks.reduce((sum, c) => sum + c.plain_size, 0));
    let at = 0;
    let out = 0;
    for (const [i, c] of m.chunks.entries()) {
      const name = `chunk #${m.first + i} ${c.id}`;
      const file = input.subarray(at, at + c.stored_size);
      at += c.stored_size;
      if (sha256Hex(file) !== c.stored_sha256) throw new Damaged(`${name}: stored bytes do not match their SHA-256`);
      let plain: Buffer;
      try {
        plain = await open(file, c.plain_size, c.id);
      } catch (e) {
        throw new Damaged(`${name}: ${(e as Error).message}`);
      }
      if (plain.length !== c.plain_size) throw new Damaged(`${name}: ${plain.length} bytes after decryption, manifest says ${c.plain_size}`);
      out += plain.copy(output, out);
    }
    hash.update(output);
    port.postMessage({ type: "opened", input: m.input, output: output.buffer as ArrayBuffer } satisfies FromOpener, [m.input, output.buffer as ArrayBuffer]);
  };
  port.on("message", (m: ToOpener) => {
    queue = queue.then(() => handle(m)).catch((e: Error) => {
      failed = true;
      port.postMessage({ type: "failed", message: e.message, integrity: e instanceof Damaged } satisfies FromOpener);
    });
  });
}
