import { once } from "node:events";
import type { ChildProcess } from "node:child_process";

/**
 * Writes a stream into a child's stdin with backpressure. If the child stops
 * reading (exits, or closes stdin as `pg_restore --list` does once it has the
 * table of contents), the rest of the source is drained when
 * `drainAfterClose` is set, so its end-of-stream checks still run; otherwise
 * feeding stops there.
 */
export async function feed(child: ChildProcess, source: AsyncIterable<Buffer>, drainAfterClose: boolean): Promise<void> {
  const stdin = child.stdin!;
  let open = true;
  const closed = new Promise<void>((resolve) => {
    const close = () => {
      open = false;
      resolve();
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
    if (!stdin.write(data)) await Promise.race([once(stdin, "drain"), closed]);
  }
  if (open) stdin.end();
}
