// The runner's only way to the repository: the Worker's job-scoped endpoint
// (workers/repository/routes.ts). Every call is idempotent (objects are
// write-once), so transient failures are retried with backoff. Requests go
// through node:http (./http.ts), not fetch: packs are large and many.
import { AppError } from "../../workers/shared/errors.ts";
import type { JobCompletion, JobProgress, RepositoryAccess } from "../../workers/shared/protocol.ts";
import { request, type Reply } from "./http.ts";
import { IntegrityError } from "./chunk-reader.ts";

export interface ListedObject {
  key: string;
  size: number;
  uploaded: string;
}

export interface StoredObjectInfo {
  size: number;
  sha256: string | undefined;
}

const ATTEMPTS = 4;

export class RepositoryClient {
  private readonly base: string;
  /** Shared by every client of one job: a heartbeat's renewed token reaches them all. */
  private readonly access: RepositoryAccess;
  constructor(access: RepositoryAccess) {
    this.base = access.url.replace(/\/+$/, "");
    this.access = access;
  }

  async head(key: string): Promise<StoredObjectInfo | undefined> {
    const res = await this.send("HEAD", `/objects/${key}`, "read");
    res.discard();
    if (res.status === 404) return undefined;
    return info(res);
  }

  /**
   * An object's bytes. A body that breaks off on every attempt is "object_unreadable": the store answered but cannot deliver it.
   * With `into`, the bytes land at its start when they fit (the result is then a view of it).
   */
  async get(key: string, headers: Record<string, string> = {}, into?: Buffer): Promise<Buffer> {
    let broken = "";
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      const res = await this.send("GET", `/objects/${key}`, "read", undefined, headers);
      if (res.status === 404) {
        res.discard();
        throw new AppError("object_missing", `${key} is missing from the repository`);
      }
      try {
        return await res.bytes(into);
      } catch (e) {
        broken = (e as Error).message;
      }
    }
    throw new AppError("object_unreadable", `${key} cannot be read (${broken})`);
  }

  /** Bytes [offset, offset + length) of an object, with the same retry rules (and `into`) as get(). */
  async getRange(key: string, offset: number, length: number, into?: Buffer): Promise<Buffer> {
    return this.get(key, { range: `bytes=${offset}-${offset + length - 1}` }, into);
  }

  /** Writes an object once; an existing object is left as it is and described. `body` may come in pieces (see manifest-file.ts). */
  async put(key: string, body: Buffer | Buffer[], sha256: string): Promise<StoredObjectInfo> {
    const res = await this.send("PUT", `/objects/${key}`, "write", body, { "x-content-sha256": sha256 });
    res.discard();
    return info(res);
  }

  /** Every object under a prefix, a page (up to 1,000) at a time. */
  async *list(prefix: string): AsyncGenerator<ListedObject[]> {
    let cursor: string | undefined;
    do {
      const query = new URLSearchParams({ prefix, ...(cursor ? { cursor } : {}) });
      const res = await this.send("GET", `/list?${query}`, "read");
      const page = (await res.json()) as { objects: ListedObject[]; cursor?: string };
      yield page.objects;
      cursor = page.cursor;
    } while (cursor);
  }

  /** Objects under a prefix of a protected R2 bucket the job may read (a training dataset's), a page at a time. */
  async *listSource(bucket: string, prefix: string): AsyncGenerator<SourceObject[]> {
    let cursor: string | undefined;
    do {
      const query = new URLSearchParams({ prefix, ...(cursor ? { cursor } : {}) });
      const res = await this.send("GET", `/source/${bucket}/list?${query}`, "read");
      const page = (await res.json()) as { objects: SourceObject[]; cursor?: string };
      yield page.objects;
      cursor = page.cursor;
    } while (cursor);
  }

  /** One such object's bytes as a stream, only while it still has `etag`. */
  async openSource(bucket: string, object: SourceObject): Promise<ReadableStream<Uint8Array>> {
    const path = object.key.split("/").map(encodeURIComponent).join("/");
    const res = await this.send("GET", `/source/${bucket}/objects/${path}?etag=${encodeURIComponent(object.etag)}`, "read");
    if (res.status === 404) {
      res.discard();
      throw new AppError("source_object_missing", `${bucket}/${object.key} disappeared while being backed up`);
    }
    return res.stream();
  }

  /**
   * Writes one object of a training-data restore's target prefix, streamed
   * with its length (R2 wants one). `source` is called again for a retry.
   */
  async putTarget(bucket: string, key: string, size: number, source: () => AsyncIterable<Uint8Array>): Promise<void> {
    const url = `${this.base}/source/${bucket}/objects/${key.split("/").map(encodeURIComponent).join("/")}`;
    let last = "";
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      try {
        const res = await fetch(url, {
          method: "PUT", body: source() as unknown as ReadableStream, duplex: "half",
          headers: { authorization: `Bearer ${this.access.token}`, "content-length": String(size) },
        } as RequestInit);
        if (res.ok) return;
        last = `HTTP ${res.status} ${(await res.text()).slice(0, 300)}`;
        if (res.status < 500 && res.status !== 429) break;
      } catch (e) {
        const cause = (e as Error).cause;
        if (cause instanceof IntegrityError) throw cause; // the backup's own bytes: retrying will not help
        last = `${(e as Error).message}${cause ? ` (${(cause as Error).message})` : ""}`;
      }
      if (attempt < ATTEMPTS) await new Promise((r) => setTimeout(r, 200 * 4 ** (attempt - 1)));
    }
    throw new AppError("repository_write_failed", `writing ${bucket}/${key} failed: ${last}`);
  }

  /** An object a training-data restore wrote, read back. */
  async openTarget(bucket: string, key: string): Promise<ReadableStream<Uint8Array>> {
    const res = await this.send("GET", `/source/${bucket}/objects/${key.split("/").map(encodeURIComponent).join("/")}`, "read");
    if (res.status === 404) {
      res.discard();
      throw new AppError("target_object_missing", `${bucket}/${key} is not there after it was written`);
    }
    return res.stream();
  }

  async delete(keys: string[]): Promise<void> {
    (await this.send("POST", "/delete", "write", Buffer.from(JSON.stringify({ keys })), json)).discard();
  }

  /** A heartbeat. The answer carries the job's renewed token (it lives one lease): kept for every later request. */
  async progress(jobId: string, progress: JobProgress): Promise<void> {
    const res = await this.send("POST", `/jobs/${jobId}/progress`, "report", Buffer.from(JSON.stringify(progress)), json);
    const body = (await res.json().catch(() => ({}))) as { token?: unknown };
    if (typeof body.token === "string" && body.token) this.access.token = body.token;
  }

  /** A capability's own report about the running job (e.g. a change-stream segment made durable), answered with JSON. */
  async report<T = unknown>(path: string, body: unknown): Promise<T> {
    const res = await this.send("POST", `/${path}`, "report", Buffer.from(JSON.stringify(body)), json);
    if (res.status === 404) {
      res.discard();
      throw new AppError("repository_report_failed", `repository POST /${path.split("/")[0]}… answered 404`);
    }
    return (await res.json()) as T;
  }

  async complete(jobId: string, completion: JobCompletion): Promise<void> {
    (await this.send("POST", `/jobs/${jobId}/complete`, "report", Buffer.from(JSON.stringify(completion)), json)).discard();
  }

  private async send(method: string, path: string, what: "read" | "write" | "report", body?: Buffer | Buffer[], headers: Record<string, string> = {}): Promise<Reply> {
    let last = "";
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      try {
        const res = await request(this.base + path, method, { authorization: `Bearer ${this.access.token}`, ...headers }, body);
        if (res.ok || res.status === 404) return res;
        const text = method === "HEAD" ? (res.discard(), "") : (await res.text()).slice(0, 300);
        last = `HTTP ${res.status} ${text}`.trim();
        if (res.status < 500 && res.status !== 429) break; // the request itself is wrong: retrying will not help
      } catch (e) {
        last = (e as Error).message;
      }
      if (attempt < ATTEMPTS) await new Promise((r) => setTimeout(r, 200 * 4 ** (attempt - 1)));
    }
    throw new AppError(`repository_${what}_failed`, `repository ${method} ${path.split("/").slice(0, 3).join("/")}… failed: ${last}`);
  }
}

const json = { "content-type": "application/json" };

export interface SourceObject {
  key: string;
  size: number;
  etag: string;
  uploaded: string;
}

function info(res: Reply): StoredObjectInfo {
  return { size: Number(res.header("x-stored-size")), sha256: res.header("x-stored-sha256") ?? undefined };
}
