// A small PostgreSQL client that speaks the frontend/backend protocol (v3)
// itself, for the training-data jobs: SQL from the config (ML_DATASETS
// queries) must run as SQL and nothing else. Piped into `psql -f -`, a line
// like `\! rm -rf ~` would be a psql meta-command run as a shell command by
// the runner; `psql -c` still interprets a string that starts with a
// backslash. Here a dataset query is sent with the extended query protocol
// (Parse/Bind/Execute), which also takes exactly one statement, so it cannot
// smuggle a second one after a semicolon either.
//
// What it supports is what the jobs need: TLS (sslmode disable / prefer /
// require / verify-ca / verify-full, libpq's default prefer), trust,
// cleartext, MD5 and SCRAM-SHA-256 authentication, simple queries, statement
// descriptions (column names and types), streamed COPY out and in with
// backpressure, so memory stays bounded by a few messages, and the logical
// replication protocol (a `replication=database` connection, CopyBoth) for
// continuous archiving (runner/continuous/).
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";
import net from "node:net";
import tls from "node:tls";
import { AppError } from "../../workers/shared/errors.ts";
import { scrub } from "../failure.ts";
import { pgEnv } from "./pg-env.ts";

const CONNECT_TIMEOUT_MS = 10_000;
/** Messages read ahead of the consumer before the socket is paused. */
const HIGH_WATER = 256;

interface Message {
  type: string;
  body: Buffer;
}

export interface Column {
  name: string;
  type_oid: number;
  type_modifier: number;
}

/** An error the server reported (SQLSTATE in `sqlstate`). */
export class PgServerError extends Error {
  readonly sqlstate: string;
  constructor(fields: Record<string, string>) {
    super(`${fields.S ?? "ERROR"}: ${fields.M ?? "unknown error"}${fields.D ? ` (${fields.D})` : ""}`);
    this.sqlstate = fields.C ?? "";
  }
}

export class PgWire {
  private socket!: net.Socket;
  private buffer: Buffer = Buffer.alloc(0);
  private readonly queue: Message[] = [];
  private waiter: ((m: Message | Error) => void) | undefined;
  private failure: Error | undefined;
  private readonly url: string;
  private readonly replication: boolean;

  private constructor(url: string, replication: boolean) {
    this.url = url;
    this.replication = replication;
  }

  /**
   * Connects and authenticates; failures are JobFailures with the codes psql's would get.
   * `replication`: a logical replication connection (walsender commands such as CREATE_REPLICATION_SLOT).
   */
  static async connect(url: string, opts: { replication?: boolean } = {}): Promise<PgWire> {
    const client = new PgWire(url, opts.replication ?? false);
    try {
      await client.start();
    } catch (e) {
      client.socket?.destroy();
      throw client.asAppError(e);
    }
    return client;
  }

  /** A server or connection error as a job failure, without the password. */
  asAppError(e: unknown): AppError {
    if (e instanceof AppError) return e;
    const message = (e as Error).message;
    const password = pgEnv(this.url).PGPASSWORD;
    const text = scrub(message, password ? [password] : []);
    const state = (e as PgServerError).sqlstate ?? "";
    const code = state === "28P01" || state === "28000" ? "auth_failed"
      : state === "3D000" ? "database_missing"
      : state === "42501" ? "permission_denied"
      : state.startsWith("42") ? "query_invalid"
      : /ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|timed out/.test(message) ? "database_unreachable"
      : /closed|ECONNRESET|EPIPE/.test(message) ? "database_connection_lost"
      : "database_error";
    return new AppError(code, `postgres: ${text}`);
  }

  private async start(): Promise<void> {
    const env = pgEnv(this.url);
    const host = env.PGHOST ?? "localhost";
    const port = Number(env.PGPORT ?? 5432);
    const sslmode = env.PGSSLMODE ?? "prefer";
    const raw = await new Promise<net.Socket>((resolve, reject) => {
      // PGHOSTADDR (a checked restore target's address) is where to connect; the host name stays for TLS.
      const s = host.startsWith("/") ? net.connect(`${host}/.s.PGSQL.${port}`) : net.connect(port, env.PGHOSTADDR ?? host);
      s.setTimeout(CONNECT_TIMEOUT_MS, () => s.destroy(new Error(`connecting to ${host}:${port} timed out`)));
      s.once("connect", () => resolve(s));
      s.once("error", reject);
    });
    let socket: net.Socket = raw;
    if (sslmode !== "disable" && !host.startsWith("/")) {
      raw.write(Buffer.concat([int32(8), int32(80877103)])); // SSLRequest
      const answer = await new Promise<string>((resolve, reject) => {
        raw.once("data", (d: Buffer) => resolve(d.subarray(0, 1).toString()));
        raw.once("error", reject);
      });
      if (answer === "S") {
        socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
          const t = tls.connect({ socket: raw, servername: net.isIP(host) ? undefined : host, rejectUnauthorized: sslmode.startsWith("verify") });
          t.once("secureConnect", () => resolve(t));
          t.once("error", reject);
        });
        if (sslmode === "verify-full" && !(socket as tls.TLSSocket).authorized) throw new Error("TLS certificate not verified");
      } else if (sslmode !== "prefer" && sslmode !== "allow") {
        throw new Error(`the server does not offer TLS, and sslmode=${sslmode} requires it`);
      }
    }
    socket.setTimeout(0);
    this.socket = socket;
    socket.on("data", (d: Buffer) => this.receive(d));
    socket.on("error", (e) => this.fail(e));
    socket.on("close", () => this.fail(new Error("the server closed the connection")));

    const user = env.PGUSER ?? process.env.USER ?? "postgres";
    const params = ["user", user, "database", env.PGDATABASE ?? user, "client_encoding", "UTF8", "application_name", "astrid-backup",
      ...(this.replication ? ["replication", "database"] : [])];
    const body = Buffer.concat([int32(196608), ...params.map(cstr), Buffer.from([0])]);
    socket.write(Buffer.concat([int32(body.length + 4), body]));
    await this.authenticate(user, env.PGPASSWORD ?? "");
    await this.untilReady();
  }

  private async authenticate(user: string, password: string): Promise<void> {
    let scram: { nonce: string; bare: string; signature?: Buffer } | undefined;
    for (;;) {
      const m = await this.next();
      if (m.type === "E") throw new PgServerError(errorFields(m.body));
      if (m.type !== "R") throw new Error(`unexpected message ${m.type} during authentication`);
      const kind = m.body.readInt32BE(0);
      if (kind === 0) return;
      if (kind === 3) this.send("p", cstr(password));
      else if (kind === 5) {
        const inner = createHash("md5").update(password + user).digest("hex");
        this.send("p", cstr(`md5${createHash("md5").update(Buffer.concat([Buffer.from(inner), m.body.subarray(4, 8)])).digest("hex")}`));
      } else if (kind === 10) {
        const mechanisms = m.body.subarray(4).toString("utf8").split("\0");
        if (!mechanisms.includes("SCRAM-SHA-256")) throw new Error(`unsupported SASL mechanisms ${mechanisms.join(",")}`);
        const nonce = randomBytes(18).toString("base64");
        scram = { nonce, bare: `n=*,r=${nonce}` };
        const first = Buffer.from(`n,,${scram.bare}`);
        this.send("p", Buffer.concat([cstr("SCRAM-SHA-256"), int32(first.length), first]));
      } else if (kind === 11 && scram) {
        const serverFirst = m.body.subarray(4).toString("utf8");
        const attrs = Object.fromEntries(serverFirst.split(",").map((kv) => [kv[0], kv.slice(2)]));
        if (!attrs.r?.startsWith(scram.nonce)) throw new Error("SCRAM: the server's nonce does not extend ours");
        const salted = pbkdf2Sync(password.normalize("NFKC"), Buffer.from(attrs.s!, "base64"), Number(attrs.i), 32, "sha256");
        const clientKey = createHmac("sha256", salted).update("Client Key").digest();
        const withoutProof = `c=biws,r=${attrs.r}`;
        const message = `${scram.bare},${serverFirst},${withoutProof}`;
        const signature = createHmac("sha256", createHash("sha256").update(clientKey).digest()).update(message).digest();
        const proof = Buffer.from(clientKey.map((b, i) => b ^ signature[i]!));
        scram.signature = createHmac("sha256", createHmac("sha256", salted).update("Server Key").digest()).update(message).digest();
        this.send("p", Buffer.from(`${withoutProof},p=${proof.toString("base64")}`));
      } else if (kind === 12 && scram?.signature) {
        const v = /v=([^,]+)/.exec(m.body.subarray(4).toString("utf8"))?.[1];
        const got = Buffer.from(v ?? "", "base64");
        if (got.length !== scram.signature.length || !timingSafeEqual(got, scram.signature)) throw new Error("SCRAM: the server's signature is wrong");
      } else {
        throw new Error(`unsupported authentication method ${kind}`);
      }
    }
  }

  /** A simple query (statements the runner wrote itself): every row as text, NULL as null. */
  async query(sql: string): Promise<(string | null)[][]> {
    this.send("Q", cstr(sql));
    const rows: (string | null)[][] = [];
    let error: Error | undefined;
    for (;;) {
      const m = await this.next();
      if (m.type === "D") rows.push(dataRow(m.body));
      else if (m.type === "E") error = new PgServerError(errorFields(m.body));
      else if (m.type === "Z") break;
    }
    if (error) throw error;
    return rows;
  }

  /** The result columns of one statement, without running it. */
  async describe(sql: string): Promise<Column[]> {
    this.send("P", Buffer.concat([cstr(""), cstr(sql), int16(0)]));
    this.send("D", Buffer.concat([Buffer.from("S"), cstr("")]));
    this.send("S", Buffer.alloc(0));
    let columns: Column[] = [];
    let error: Error | undefined;
    for (;;) {
      const m = await this.next();
      if (m.type === "T") columns = rowDescription(m.body);
      else if (m.type === "E") error = new PgServerError(errorFields(m.body));
      else if (m.type === "Z") break;
    }
    if (error) throw error;
    return columns;
  }

  /** `COPY … TO STDOUT` as one statement of the extended protocol, streamed. */
  async *copyOut(sql: string): AsyncGenerator<Buffer> {
    this.send("P", Buffer.concat([cstr(""), cstr(sql), int16(0)]));
    this.send("B", Buffer.concat([cstr(""), cstr(""), int16(0), int16(0), int16(0)]));
    this.send("E", Buffer.concat([cstr(""), int32(0)]));
    this.send("S", Buffer.alloc(0));
    let error: Error | undefined;
    let copying = false;
    for (;;) {
      const m = await this.next();
      if (m.type === "H") copying = true;
      else if (m.type === "d" && copying) yield m.body;
      else if (m.type === "E") error = new PgServerError(errorFields(m.body));
      else if (m.type === "Z") break;
    }
    if (error) throw error;
    if (!copying) throw new Error("the statement did not start a COPY");
  }

  /** `COPY … FROM STDIN` (a statement the runner wrote), fed from `source`; returns the rows copied. */
  async copyIn(sql: string, source: AsyncIterable<Uint8Array>): Promise<number> {
    this.send("Q", cstr(sql));
    let error: Error | undefined;
    let rows = 0;
    for (;;) {
      const m = await this.next();
      if (m.type === "G") {
        try {
          for await (const part of source) {
            if (this.failure) throw this.failure;
            if (!this.send("d", Buffer.from(part))) await new Promise((r) => this.socket.once("drain", r));
          }
          this.send("c", Buffer.alloc(0));
        } catch (e) {
          this.send("f", cstr(String((e as Error).message).slice(0, 500)));
          error = e as Error;
        }
      } else if (m.type === "C") rows = Number(/(\d+)\s*$/.exec(m.body.toString("utf8").replace(/\0$/, ""))?.[1] ?? 0);
      else if (m.type === "E") error ??= new PgServerError(errorFields(m.body));
      else if (m.type === "Z") break;
    }
    if (error) throw error;
    return rows;
  }

  /**
   * START_REPLICATION (on a replication connection): once the server answers
   * with CopyBoth, its CopyData messages (XLogData 'w', keepalive 'k') are
   * yielded until it ends the copy. sendCopyData() answers on the same socket.
   */
  async *replicate(command: string): AsyncGenerator<Buffer> {
    this.send("Q", cstr(command));
    for (;;) {
      const m = await this.next();
      if (m.type === "W") break;
      if (m.type === "E") throw new PgServerError(errorFields(m.body));
    }
    for (;;) {
      const m = await this.next();
      if (m.type === "d") yield m.body;
      else if (m.type === "E") throw new PgServerError(errorFields(m.body));
      else if (m.type === "c") return;
    }
  }

  /** A CopyData message to the server (a standby status update during replication). */
  sendCopyData(body: Buffer): void {
    if (this.failure) throw this.failure;
    this.send("d", body);
  }

  /** Closes the socket at once (a replication stream that must stop now). */
  destroy(): void {
    this.socket?.destroy();
  }

  async close(): Promise<void> {
    if (!this.socket || this.socket.destroyed) return;
    this.send("X", Buffer.alloc(0));
    this.socket.end();
  }

  private send(type: string, body: Buffer): boolean {
    return this.socket.write(Buffer.concat([Buffer.from(type), int32(body.length + 4), body]));
  }

  private receive(data: Buffer): void {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, data]) : data;
    while (this.buffer.length >= 5) {
      const length = this.buffer.readInt32BE(1);
      if (this.buffer.length < length + 1) break;
      const m = { type: String.fromCharCode(this.buffer[0]!), body: this.buffer.subarray(5, length + 1) };
      this.buffer = this.buffer.subarray(length + 1);
      if (m.type === "N" || m.type === "S" || m.type === "K" || m.type === "A") continue; // notices, parameters, key data, notifications
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = undefined;
        w(m);
      } else {
        this.queue.push(m);
      }
    }
    if (this.queue.length > HIGH_WATER) this.socket.pause();
  }

  private fail(e: Error): void {
    this.failure ??= e;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w(e);
    }
  }

  private next(): Promise<Message> {
    const m = this.queue.shift();
    if (this.queue.length < HIGH_WATER / 2 && this.socket?.isPaused()) this.socket.resume();
    if (m) return Promise.resolve(m);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiter = (x) => (x instanceof Error ? reject(x) : resolve(x));
    });
  }

  private async untilReady(): Promise<void> {
    for (;;) {
      const m = await this.next();
      if (m.type === "E") throw new PgServerError(errorFields(m.body));
      if (m.type === "Z") return;
    }
  }
}

/** Quotes an identifier for SQL the runner writes. */
export const quoteIdent = (s: string) => `"${s.replace(/"/g, '""')}"`;

/** Column names and their SQL types (format_type), e.g. for CREATE TABLE. */
export async function columnTypes(db: PgWire, columns: Column[]): Promise<{ name: string; type: string }[]> {
  if (columns.length === 0) return [];
  const oids = columns.map((c) => String(c.type_oid)).join(",");
  const mods = columns.map((c) => String(c.type_modifier)).join(",");
  const rows = await db.query(`SELECT format_type(o, m) FROM unnest(ARRAY[${oids}]::oid[], ARRAY[${mods}]::int[]) WITH ORDINALITY AS t(o, m, i) ORDER BY i`);
  return columns.map((c, i) => ({ name: c.name, type: rows[i]![0]! }));
}

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

function int16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
}

function cstr(s: string): Buffer {
  return Buffer.concat([Buffer.from(s, "utf8"), Buffer.from([0])]);
}

function errorFields(body: Buffer): Record<string, string> {
  const fields: Record<string, string> = {};
  let i = 0;
  while (i < body.length && body[i] !== 0) {
    const end = body.indexOf(0, i + 1);
    fields[String.fromCharCode(body[i]!)] = body.subarray(i + 1, end).toString("utf8");
    i = end + 1;
  }
  return fields;
}

function dataRow(body: Buffer): (string | null)[] {
  const n = body.readInt16BE(0);
  const row: (string | null)[] = [];
  let at = 2;
  for (let c = 0; c < n; c++) {
    const len = body.readInt32BE(at);
    at += 4;
    if (len < 0) row.push(null);
    else {
      row.push(body.subarray(at, at + len).toString("utf8"));
      at += len;
    }
  }
  return row;
}

function rowDescription(body: Buffer): Column[] {
  const n = body.readInt16BE(0);
  const columns: Column[] = [];
  let at = 2;
  for (let c = 0; c < n; c++) {
    const end = body.indexOf(0, at);
    const name = body.subarray(at, end).toString("utf8");
    at = end + 1;
    const type_oid = body.readUInt32BE(at + 6);
    const type_modifier = body.readInt32BE(at + 12);
    columns.push({ name, type_oid, type_modifier });
    at += 18;
  }
  return columns;
}
