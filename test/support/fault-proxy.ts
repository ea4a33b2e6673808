// A pass-through HTTP proxy between the runner and the Worker's repository
// endpoint that can be told to fail writes: how "R2 writes failing" looks
// from the runner's side, with the real Worker and local R2 behind it.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface FaultProxy {
  url: string;
  target: string;
  /** When set, PUTs of pack objects answer 503 and never reach the Worker. */
  failChunkWrites: boolean;
  failedWrites: number;
  close(): Promise<void>;
}

export async function startFaultProxy(): Promise<FaultProxy> {
  const state = { target: "", failChunkWrites: false, failedWrites: 0 };
  const server: Server = createServer(async (req, res) => {
    if (state.failChunkWrites && req.method === "PUT" && /\/objects\/(archive\/[^/]+\/)?packs\//.test(req.url ?? "")) {
      state.failedWrites++;
      req.resume();
      res.writeHead(503, { "content-type": "application/json" }).end('{"error":{"code":"unavailable","message":"injected"}}');
      return;
    }
    const body = req.method === "GET" || req.method === "HEAD" ? undefined : Buffer.concat(await Array.fromAsync(req));
    const headers = Object.fromEntries(Object.entries(req.headers).filter(([k]) => k !== "host" && k !== "connection")) as Record<string, string>;
    try {
      const upstream = await fetch(state.target + req.url, { method: req.method, headers, ...(body ? { body } : {}) });
      // fetch() has already decoded the body: pass it on with its real length and no encoding.
      const payload = Buffer.from(await upstream.arrayBuffer());
      const passed = [...upstream.headers].filter(([k]) => !["content-encoding", "content-length", "transfer-encoding"].includes(k));
      res.writeHead(upstream.status, { ...Object.fromEntries(passed), "content-length": String(payload.length) });
      res.end(req.method === "HEAD" ? undefined : payload);
    } catch {
      res.writeHead(502).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return Object.assign(state, {
    url,
    close: () => new Promise<void>((r) => server.close(() => r())),
  }) as FaultProxy;
}
