// The runner's only way to the repository: the Worker's job-scoped endpoint
// (workers/repository/routes.ts). Every call is idempotent (objects are
// write-once), so transient failures are retried with backoff.
import { AppError } from "../../workers/shared/errors.ts";
import type { JobCompletion, JobProgress, RepositoryAccess } from "../../workers/shared/protocol.ts";

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
  private readonly token: string;
  constructor(access: RepositoryAccess) {
    this.base = access.url.replace(/\/+$/, "");
    this.token = access.token;
  }

  async head(key: string): Promise<StoredObjectInfo | undefined> {
    const res = await this.send("HEAD", `/objects/${key}`, "read");
    if (res.status === 404) return undefined;
    return info(res);
  }

  /** An object's bytes. A body that breaks off on every attempt is "object_unreadable": the store answered but cannot deliver it. */
  async get(key: string, headers: Record<string, string> = {}): Promise<Buffer> {
    let broken = "";
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      const res = await this.send("GET", `/objects/${key}`, "read", undefined, headers);
      if (res.status === 404) throw new AppError("object_missing", `${key} is missing from the repository`);
      try {
        return Buffer.from(await res.arrayBuffer());
      } catch (e) {
        broken = (e as Error).message;
      }
    }
    throw new AppError("object_unreadable", `${key} cannot be read (${broken})`);
  }

  /** Bytes [offset, offset + length) of an object, with the same retry rules as get(). */
  async getRange(key: string, offset: number, length: number): Promise<Buffer> {
    return this.get(key, { range: `bytes=${offset}-${offset + length - 1}` });
  }

  /** Writes an object once; an existing object is left as it is and described. */
  async put(key: string, body: Buffer, sha256: string): Promise<StoredObjectInfo> {
    const res = await this.send("PUT", `/objects/${key}`, "write", body, { "x-content-sha256": sha256 });
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
    if (res.status === 404 || !res.body) throw new AppError("source_object_missing", `${bucket}/${object.key} disappeared while being backed up`);
    return res.body;
  }

  async delete(keys: string[]): Promise<void> {
    await this.send("POST", "/delete", "write", Buffer.from(JSON.stringify({ keys })), json);
  }

  async progress(jobId: string, progress: JobProgress): Promise<void> {
    await this.send("POST", `/jobs/${jobId}/progress`, "report", Buffer.from(JSON.stringify(progress)), json);
  }

  async complete(jobId: string, completion: JobCompletion): Promise<void> {
    await this.send("POST", `/jobs/${jobId}/complete`, "report", Buffer.from(JSON.stringify(completion)), json);
  }

  private async send(method: string, path: string, what: "read" | "write" | "report", body?: Buffer, headers: Record<string, string> = {}) {
    let last = "";
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      try {
        const res = await fetch(this.base + path, {
          method, headers: { authorization: `Bearer ${this.token}`, ...headers }, ...(body ? { body } : {}),
        });
        if (res.ok || res.status === 404) return res;
        const text = method === "HEAD" ? "" : (await res.text()).slice(0, 300);
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

function info(res: Response): StoredObjectInfo {
  return { size: Number(res.headers.get("x-stored-size")), sha256: res.headers.get("x-stored-sha256") ?? undefined };
}
