// HTTP for the runner's repository traffic, on node:http rather than fetch.
//
// Why: fetch (undici) copies a Buffer body before sending it and moves
// response bodies through web streams in small pieces. For 8 MiB packs out
// and 8 MiB range reads in, that cost about 1.3 CPU-seconds per GiB of body on
// the client against 0.26 for node:http on this machine (and an extra pack in
// memory per upload), for the same bytes on the wire. Bodies here are
// Buffers written as they are, and a response body is read into one Buffer of
// its announced length.
import http from "node:http";
import https from "node:https";
import { Readable } from "node:stream";

/** As long as undici's default header and body timeouts, which this replaces. */
const IDLE_TIMEOUT_MS = 300_000;

export interface Reply {
  status: number;
  ok: boolean;
  header(name: string): string | undefined;
  /** The whole body; rejects if it breaks off before content-length bytes arrived. With `into`, read into its start when the body fits. */
  bytes(into?: Buffer): Promise<Buffer>;
  text(): Promise<string>;
  json(): Promise<unknown>;
  /** The body as a web stream, for callers that pass it on without holding it. */
  stream(): ReadableStream<Uint8Array>;
  /** Discards the body, so the connection can be reused. */
  discard(): void;
}

/** `body` may come in pieces (a large manifest), written one after another: never joined into one copy. */
export function request(url: string, method: string, headers: Record<string, string>, body?: Buffer | Buffer[]): Promise<Reply> {
  const target = new URL(url);
  const transport = target.protocol === "https:" ? https : http;
  const pieces = body === undefined ? [] : Array.isArray(body) ? body : [body];
  const length = pieces.reduce((sum, p) => sum + p.length, 0);
  return new Promise<Reply>((resolve, reject) => {
    const req = transport.request(target, { method, headers: { ...headers, ...(body ? { "content-length": String(length) } : {}) } }, (res) => {
      resolve(reply(res));
    });
    req.setTimeout(IDLE_TIMEOUT_MS, () => req.destroy(new Error(`no answer for ${IDLE_TIMEOUT_MS / 1000} s`)));
    req.once("error", reject);
    for (const piece of pieces) req.write(piece);
    req.end();
  });
}

function reply(res: http.IncomingMessage): Reply {
  const status = res.statusCode ?? 0;
  const bytes = (into?: Buffer) => new Promise<Buffer>((resolve, reject) => {
    const announced = Number(res.headers["content-length"]);
    // One allocation (or none, into the caller's buffer) when the length is announced; pieces are copied in as they arrive.
    const known = Number.isSafeInteger(announced) && announced >= 0;
    const whole = !known ? undefined : into && into.length >= announced ? into.subarray(0, announced) : Buffer.allocUnsafe(announced);
    const pieces: Buffer[] = [];
    let got = 0;
    res.on("data", (piece: Buffer) => {
      if (whole && got + piece.length <= whole.length) piece.copy(whole, got);
      else pieces.push(piece);
      got += piece.length;
    });
    res.once("error", reject);
    res.once("aborted", () => reject(new Error("the response body broke off")));
    res.once("end", () => {
      if (!whole) return resolve(Buffer.concat(pieces, got));
      if (got !== whole.length) return reject(new Error(`the response body has ${got} bytes, content-length said ${whole.length}`));
      resolve(whole);
    });
  });
  return {
    status,
    ok: status >= 200 && status < 300,
    header: (name) => {
      const v = res.headers[name.toLowerCase()];
      return Array.isArray(v) ? v.join(", ") : v;
    },
    bytes,
    text: async () => (await bytes()).toString("utf8"),
    json: async () => JSON.parse((await bytes()).toString("utf8")),
    stream: () => Readable.toWeb(res) as ReadableStream<Uint8Array>,
    discard: () => void res.resume(),
  };
}
