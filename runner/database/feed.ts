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
 * feeding stops there. `done(piece)` is called once feed no longer needs a
 * piece (written into the pipe, or drained unwritten), so its buffer can be
 * reused (plaintext.ts).
 */
export async function feed(child: ChildProcess, source: AsyncIterable<Buffer>, drainAfterClose: boolean, done?: (piece: Buffer) => void): Promise<void> {
  const stdin = child.stdin!;
  let open = true;
  let wake = () => {};
  const close = () => {
    open = false;
    wake();
  };
  stdin.once("error", close);
  stdin.once("close", close);
  child.once("exit", close);
  for await (const data of source) {
    if (!open) {
      if (!drainAfterClose) return;
      done?.(data);
      continue;
    }
    stdin.write(data, (error) => {
      if (!error) done?.(data);
      wake();
    });
    // A write's callback runs once stdin's queue has shrunk by it.
    while (open && stdin.writableLength > AHEAD_BYTES) await new Promise<void>((resolve) => (wake = resolve));
  }
  if (open) stdin.end();
}
