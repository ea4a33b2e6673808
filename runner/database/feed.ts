import type { ChildProcess } from "node:child_process";

/**
 * Up to this much written but not yet taken by the child. Pieces are ~1 MiB
 * (plaintext.ts), so the child has the previous piece to read while the
 * source makes the next: waiting until all was taken would leave it only the
 * pipe's 64 KiB to chew on meanwhile.
 */
const AHEAD_BYTES = 1024 * 1024;

/**
 * Writes a stream into a child's stdin with backpressure. If the child stops
 * reading (exits, or closes stdin as `pg_restore --list` does once it has the
 * table of contents), the rest of the source is drained when
 * `drainAfterClose` is set, so its end-of-stream checks still run; otherwise
 * feeding stops there. `written(piece)` is called once a piece has been
 * written into the pipe and its buffer is no longer needed (plaintext.ts reuses it).
 */
export async function feed(child: ChildProcess, source: AsyncIterable<Buffer>, drainAfterClose: boolean, written?: (piece: Buffer) => void): Promise<void> {
  const stdin = child.stdin!;
  let open = true;
  let wake = () => {};
  const closed = new Promise<void>((resolve) => {
    const close = () => {
      open = false;
      resolve();
      wake();
    };
    stdin.once("error", close);
    stdin.once("close", close);
    child.once("exit", close);
  });
  for await (const data of source) {
    if (!open) {
      if (drainAfterClose) continue;
      return;
    }
    stdin.write(data, (error) => {
      if (!error) written?.(data);
      wake();
    });
    // A write's callback runs once stdin's queue has shrunk by it.
    while (open && stdin.writableLength > AHEAD_BYTES) await new Promise<void>((resolve) => (wake = resolve));
  }
  if (open) stdin.end();
}
