// Preloaded into the runner (NODE_OPTIONS=--import) by the database bench's
// --memory-probe: appends process.memoryUsage() (rss, V8 heap, external,
// ArrayBuffers) as a JSON line every 100 ms to $ASTRID_BENCH_MEMLOG, so the
// bench can say what the runner's peak RSS is made of.
import { appendFileSync } from "node:fs";

const file = process.env.ASTRID_BENCH_MEMLOG;
if (file) {
  const timer = setInterval(() => {
    const m = process.memoryUsage();
    appendFileSync(file, `${JSON.stringify({ pid: process.pid, t: Date.now(), rss: m.rss, heapTotal: m.heapTotal, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers })}\n`);
  }, 100);
  timer.unref();
}
