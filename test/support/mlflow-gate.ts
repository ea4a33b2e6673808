// A pass-through proxy in front of a real MLflow server that (1) demands a
// bearer token, as an authenticating gateway in front of MLflow would, and
// (2) can make an artifact vanish for real between the runner listing it and
// downloading it: the first download of a matching path deletes the artifact
// on the server, then forwards the request, which the server answers 404;
// (3) can add an entry to the next artifact listing, as a misbehaving or
// compromised server might (a path with "..").
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface MlflowGate {
  url: string;
  target: string;
  token: string;
  /** A path fragment: the next artifact download whose path contains it deletes the artifact first. */
  vanish?: string;
  vanished: string[];
  /** Added to the next artifact-proxy listing's files. */
  inject?: { path: string; is_dir: boolean; file_size?: number };
  close(): Promise<void>;
}

export async function startMlflowGate(target: string, token: string): Promise<MlflowGate> {
  const state: Omit<MlflowGate, "url" | "close"> = { target, token, vanished: [] };
  const server: Server = createServer(async (req, res) => {
    if (req.headers.authorization !== `Bearer ${state.token}`) {
      req.resume();
      res.writeHead(401, { "content-type": "application/json" }).end('{"error_code":"UNAUTHENTICATED","message":"bad token"}');
      return;
    }
    const url = req.url ?? "";
    if (state.vanish && req.method === "GET" && url.includes("/mlflow-artifacts/artifacts/") && decodeURIComponent(url).includes(state.vanish)) {
      state.vanish = undefined;
      state.vanished.push(url);
      await fetch(state.target + url, { method: "DELETE" });
    }
    const body = req.method === "GET" || req.method === "HEAD" ? undefined : Buffer.concat(await Array.fromAsync(req));
    const headers = Object.fromEntries(Object.entries(req.headers).filter(([k]) => !["host", "connection", "authorization"].includes(k))) as Record<string, string>;
    try {
      const upstream = await fetch(state.target + url, { method: req.method, headers, ...(body ? { body } : {}) });
      let payload = Buffer.from(await upstream.arrayBuffer());
      if (state.inject && upstream.ok && url.startsWith("/api/2.0/mlflow-artifacts/artifacts?")) {
        const listing = JSON.parse(payload.toString("utf8") || "{}");
        listing.files = [...(listing.files ?? []), state.inject];
        state.inject = undefined;
        payload = Buffer.from(JSON.stringify(listing));
      }
      const passed = [...upstream.headers].filter(([k]) => !["content-encoding", "content-length", "transfer-encoding"].includes(k));
      res.writeHead(upstream.status, { ...Object.fromEntries(passed), "content-length": String(payload.length) });
      res.end(payload);
    } catch {
      res.writeHead(502).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return Object.assign(state, { url, close: () => new Promise<void>((r) => server.close(() => r())) }) as MlflowGate;
}
