// A local webhook receiver: records every request (alerts, dead-man pings).
// `failFirst` answers that many requests with 500 first, to exercise retries.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

export interface Received { method: string; path: string; body: any; at: number }

export interface WebhookReceiver {
  url: string;
  received: Received[];
  failFirst: number;
  close(): Promise<void>;
}

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const state = { received: [] as Received[], failFirst: 0 };
  const server = createServer(async (req, res) => {
    const text = Buffer.concat(await Array.fromAsync(req)).toString("utf8");
    if (state.failFirst > 0) {
      state.failFirst--;
      res.writeHead(500).end();
      return;
    }
    let body: unknown = text;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON: keep the text
    }
    state.received.push({ method: req.method ?? "", path: req.url ?? "", body, at: Date.now() });
    res.writeHead(200, { "content-type": "text/plain" }).end("ok");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return Object.assign(state, { url, close: () => new Promise<void>((r) => server.close(() => r())) });
}
