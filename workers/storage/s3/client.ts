// A small S3 client on aws4fetch for the operations this project needs from
// R2's S3 API (lifecycle configuration) and from any S3-compatible off-site
// provider (HEAD/PUT/LIST objects, multipart uploads). Path-style URLs,
// `<endpoint>/<bucket>/<key>`, because R2 and most providers accept them and
// they need no DNS per bucket. Runs in the Worker and in Node alike.
import { AwsClient } from "aws4fetch";
import { childrenNamed, parseXml, textOf, xml, XmlError, type XmlElement } from "./xml.ts";

export interface S3Config {
  /** e.g. https://<account_id>.r2.cloudflarestorage.com; a path prefix is kept. */
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** "auto" for R2 (the default); the provider's region elsewhere. */
  region?: string;
}

/** An S3 error response (or a transport failure), with S3's code; never carries credentials. */
export class S3Error extends Error {
  override name = "S3Error";
  readonly code: string;
  readonly status: number;
  readonly operation: string;
  constructor(operation: string, status: number, code: string, message: string) {
    super(`${operation}: ${code}${message ? `: ${message}` : ""}`);
    this.operation = operation;
    this.status = status;
    this.code = code;
  }
}

/** A key or bucket name this client refuses before any request. */
export class S3InputError extends Error {
  override name = "S3InputError";
}

export interface S3ObjectInfo {
  key: string;
  size: number;
  etag: string;
  lastModified: string;
  storageClass?: string;
}

export interface S3Head {
  size: number;
  etag: string;
  lastModified?: string;
  contentType?: string;
  /** x-amz-meta-* headers, names without the prefix, lowercase. */
  metadata: Record<string, string>;
}

export interface PutOptions {
  /** Required with a stream body: S3 needs the length up front (no chunked uploads). */
  contentLength?: number;
  contentType?: string;
  metadata?: Record<string, string>;
}

export interface ListPage {
  objects: S3ObjectInfo[];
  nextContinuationToken?: string;
}

export type Body = ReadableStream<Uint8Array> | Uint8Array | string;

/** S3 (and R2) bucket naming: 3-63 lowercase letters, digits, dots, hyphens; no leading/trailing punctuation. */
export function isValidBucketName(name: string): boolean {
  return /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(name) && !name.includes("..") && !/^\d+\.\d+\.\d+\.\d+$/.test(name);
}

/**
 * Percent-encodes a key for a path-style URL, segment by segment (RFC 3986,
 * so `!'()*` too). Refuses keys a URL cannot carry unchanged: "." and ".."
 * segments are collapsed by every URL parser, even when percent-encoded.
 */
export function encodeKey(key: string): string {
  if (key.length === 0) throw new S3InputError("object key is empty");
  if (new TextEncoder().encode(key).length > 1024) throw new S3InputError("object key is longer than 1024 bytes");
  const segments = key.split("/");
  if (segments.some((s) => s === "." || s === "..")) {
    throw new S3InputError(`object key ${JSON.stringify(key)} has a "." or ".." segment, which a URL cannot carry`);
  }
  try {
    return segments.map((s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)).join("/");
  } catch {
    throw new S3InputError("object key is not valid Unicode (lone surrogate)");
  }
}

/** FixedLengthStream exists only in workerd: there a stream body needs it to be sent with a Content-Length. */
type FixedLengthStreamCtor = new (length: number) => TransformStream<Uint8Array, Uint8Array>;
const FixedLength = (globalThis as { FixedLengthStream?: FixedLengthStreamCtor }).FixedLengthStream;

const RETRIES = 2;

export class S3Client {
  readonly endpoint: string;
  private readonly aws: AwsClient;
  private readonly secrets: string[];

  constructor(config: S3Config) {
    let url: URL;
    try {
      url = new URL(config.endpoint);
    } catch {
      throw new S3InputError("the S3 endpoint is not a URL");
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") throw new S3InputError("the S3 endpoint must be http(s)");
    this.endpoint = `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
    // Retries are ours (below): aws4fetch would re-send a stream body it has already consumed.
    this.aws = new AwsClient({
      accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey,
      service: "s3", region: config.region ?? "auto", retries: 0,
    });
    this.secrets = [config.accessKeyId, config.secretAccessKey].filter((s) => s.length >= 4);
  }

  // ---- buckets -----------------------------------------------------------

  async createBucket(bucket: string): Promise<void> {
    await this.send("CreateBucket", "PUT", bucket);
  }

  /** The lifecycle configuration XML, or null if the bucket has none. */
  async getLifecycle(bucket: string): Promise<string | null> {
    try {
      return await (await this.send("GetBucketLifecycleConfiguration", "GET", bucket, undefined, { lifecycle: "" })).text();
    } catch (e) {
      if (e instanceof S3Error && e.code === "NoSuchLifecycleConfiguration") return null;
      throw e;
    }
  }

  async putLifecycle(bucket: string, body: string): Promise<void> {
    await this.send("PutBucketLifecycleConfiguration", "PUT", bucket, undefined, { lifecycle: "" }, {
      body, headers: { "content-type": "application/xml" },
    });
  }

  async deleteLifecycle(bucket: string): Promise<void> {
    await this.send("DeleteBucketLifecycle", "DELETE", bucket, undefined, { lifecycle: "" });
  }

  // ---- objects -----------------------------------------------------------

  /** HEAD an object; null when it does not exist. */
  async head(bucket: string, key: string): Promise<S3Head | null> {
    let res: Response;
    try {
      res = await this.send("HeadObject", "HEAD", bucket, key);
    } catch (e) {
      if (e instanceof S3Error && e.status === 404 && e.code !== "NoSuchBucket") return null;
      throw e;
    }
    const metadata: Record<string, string> = {};
    res.headers.forEach((value, name) => {
      if (name.toLowerCase().startsWith("x-amz-meta-")) metadata[name.toLowerCase().slice(11)] = value;
    });
    const contentType = res.headers.get("content-type") ?? undefined;
    const lastModified = res.headers.get("last-modified") ?? undefined;
    return {
      size: Number(res.headers.get("content-length") ?? 0), etag: stripQuotes(res.headers.get("etag") ?? ""), metadata,
      ...(contentType ? { contentType } : {}), ...(lastModified ? { lastModified } : {}),
    };
  }

  /** PutObject. A stream body is sent as it arrives (never buffered) and needs contentLength. */
  async put(bucket: string, key: string, body: Body, opts: PutOptions = {}): Promise<{ etag: string }> {
    const res = await this.send("PutObject", "PUT", bucket, key, undefined, {
      body, headers: objectHeaders(opts), contentLength: opts.contentLength,
    });
    return { etag: stripQuotes(res.headers.get("etag") ?? "") };
  }

  async get(bucket: string, key: string): Promise<Response> {
    return this.send("GetObject", "GET", bucket, key);
  }

  async delete(bucket: string, key: string): Promise<void> {
    await this.send("DeleteObject", "DELETE", bucket, key);
  }

  /** One page of ListObjectsV2 (at most 1,000 keys). */
  async list(bucket: string, opts: { prefix?: string; continuationToken?: string; startAfter?: string; maxKeys?: number } = {}): Promise<ListPage> {
    const query: Record<string, string> = { "list-type": "2", "encoding-type": "url" };
    if (opts.prefix) query.prefix = opts.prefix;
    if (opts.continuationToken) query["continuation-token"] = opts.continuationToken;
    if (opts.startAfter) query["start-after"] = opts.startAfter;
    if (opts.maxKeys) query["max-keys"] = String(opts.maxKeys);
    const doc = await this.xmlOf("ListObjectsV2", await this.send("ListObjectsV2", "GET", bucket, undefined, query));
    // Keys come URL-encoded (encoding-type=url) so that any character survives XML; a provider
    // that ignores the parameter says so by leaving out EncodingType.
    const encoded = textOf(doc, "EncodingType") === "url";
    const decode = (k: string) => (encoded ? decodeURIComponent(k.replace(/\+/g, " ")) : k);
    const objects = childrenNamed(doc, "Contents").map((c) => {
      const storageClass = textOf(c, "StorageClass");
      return {
        key: decode(textOf(c, "Key") ?? ""), size: Number(textOf(c, "Size") ?? 0), etag: stripQuotes(textOf(c, "ETag") ?? ""),
        lastModified: textOf(c, "LastModified") ?? "", ...(storageClass ? { storageClass } : {}),
      };
    });
    const next = textOf(doc, "IsTruncated") === "true" ? textOf(doc, "NextContinuationToken") : undefined;
    return { objects, ...(next ? { nextContinuationToken: next } : {}) };
  }

  // ---- multipart ---------------------------------------------------------

  async createMultipartUpload(bucket: string, key: string, opts: Omit<PutOptions, "contentLength"> = {}): Promise<string> {
    const res = await this.send("CreateMultipartUpload", "POST", bucket, key, { uploads: "" }, { headers: objectHeaders(opts) });
    const uploadId = textOf(await this.xmlOf("CreateMultipartUpload", res), "UploadId");
    if (!uploadId) throw new S3Error("CreateMultipartUpload", res.status, "UnexpectedResponse", "no UploadId in the response");
    return uploadId;
  }

  async uploadPart(bucket: string, key: string, uploadId: string, partNumber: number, body: Body, contentLength: number): Promise<string> {
    const res = await this.send("UploadPart", "PUT", bucket, key, { partNumber: String(partNumber), uploadId }, { body, contentLength });
    const etag = res.headers.get("etag");
    if (!etag) throw new S3Error("UploadPart", res.status, "UnexpectedResponse", "no ETag for the part");
    return etag;
  }

  async completeMultipartUpload(bucket: string, key: string, uploadId: string, parts: { partNumber: number; etag: string }[]): Promise<{ etag: string }> {
    const body = xml("CompleteMultipartUpload", parts.map((p) => xml("Part", [xml("PartNumber", p.partNumber), xml("ETag", p.etag)])));
    const res = await this.send("CompleteMultipartUpload", "POST", bucket, key, { uploadId }, { body, headers: { "content-type": "application/xml" } });
    // S3 may answer 200 and still fail: the error is then the body.
    const doc = await this.xmlOf("CompleteMultipartUpload", res);
    if (doc.name === "Error") throw this.errorFrom("CompleteMultipartUpload", 200, doc);
    return { etag: stripQuotes(textOf(doc, "ETag") ?? "") };
  }

  async abortMultipartUpload(bucket: string, key: string, uploadId: string): Promise<void> {
    await this.send("AbortMultipartUpload", "DELETE", bucket, key, { uploadId });
  }

  // ---- transport ---------------------------------------------------------

  private url(bucket: string, key?: string, query?: Record<string, string>): string {
    if (!isValidBucketName(bucket)) throw new S3InputError(`bucket name ${JSON.stringify(bucket)} is not valid`);
    let url = `${this.endpoint}/${bucket}${key === undefined ? "" : `/${encodeKey(key)}`}`;
    if (query) {
      const q = Object.entries(query).map(([k, v]) => (v === "" ? encodeURIComponent(k) : `${encodeURIComponent(k)}=${encodeURIComponent(v)}`));
      if (q.length) url += `?${q.join("&")}`;
    }
    return url;
  }

  private async send(
    operation: string, method: string, bucket: string, key?: string, query?: Record<string, string>,
    opts: { body?: Body; headers?: Record<string, string>; contentLength?: number } = {},
  ): Promise<Response> {
    const url = this.url(bucket, key, query);
    let body = opts.body;
    const headers: Record<string, string> = { ...opts.headers };
    const streamed = body instanceof ReadableStream;
    if (streamed) {
      if (opts.contentLength === undefined) throw new S3InputError(`${operation}: a stream body needs its length`);
      headers["content-length"] = String(opts.contentLength);
      if (FixedLength) body = (body as ReadableStream<Uint8Array>).pipeThrough(new FixedLength(opts.contentLength));
    }
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        const request = await this.aws.sign(url, { method, headers, ...(body !== undefined ? { body: body as RequestInit["body"] } : {}) });
        res = await fetch(request);
      } catch (e) {
        if (!streamed && attempt < RETRIES) {
          await backoff(attempt);
          continue;
        }
        throw new S3Error(operation, 0, "NetworkError", `could not reach ${new URL(this.endpoint).host}: ${this.scrub((e as Error).message)}`);
      }
      if (res.ok) return res;
      // A stream cannot be sent twice; anything else is retried on 5xx and throttling.
      if (!streamed && (res.status >= 500 || res.status === 429) && attempt < RETRIES) {
        await res.body?.cancel();
        await backoff(attempt);
        continue;
      }
      throw await this.errorOf(operation, res);
    }
  }

  private async errorOf(operation: string, res: Response): Promise<S3Error> {
    const text = res.body ? await res.text() : "";
    let doc: XmlElement | undefined;
    try {
      doc = text ? parseXml(text) : undefined;
    } catch {
      doc = undefined;
    }
    if (doc?.name === "Error") return this.errorFrom(operation, res.status, doc);
    // HEAD responses have no body: name the error by its status, as S3's SDKs do.
    const byStatus: Record<number, string> = { 400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 412: "PreconditionFailed" };
    return new S3Error(operation, res.status, byStatus[res.status] ?? `HTTP${res.status}`, "");
  }

  private errorFrom(operation: string, status: number, doc: XmlElement): S3Error {
    return new S3Error(operation, status, textOf(doc, "Code") ?? `HTTP${status}`, this.scrub(textOf(doc, "Message") ?? ""));
  }

  private async xmlOf(operation: string, res: Response): Promise<XmlElement> {
    const text = await res.text();
    try {
      return parseXml(text);
    } catch (e) {
      throw new S3Error(operation, res.status, "UnexpectedResponse", e instanceof XmlError ? `malformed XML: ${e.message}` : "malformed XML");
    }
  }

  /** Providers echo request details in messages; never let a credential through. */
  private scrub(message: string): string {
    let out = message;
    for (const s of this.secrets) out = out.split(s).join("***");
    return out.slice(0, 500);
  }
}

function objectHeaders(opts: Omit<PutOptions, "contentLength">): Record<string, string> {
  const headers: Record<string, string> = {};
  if (opts.contentType) headers["content-type"] = opts.contentType;
  for (const [name, value] of Object.entries(opts.metadata ?? {})) {
    if (!/^[a-z0-9-]+$/.test(name) || !/^[\x20-\x7e]*$/.test(value)) {
      throw new S3InputError(`metadata ${JSON.stringify(name)} must be a lowercase token with a printable ASCII value`);
    }
    headers[`x-amz-meta-${name}`] = value;
  }
  return headers;
}

const stripQuotes = (etag: string) => etag.replace(/^(W\/)?"|"$/g, "");
const backoff = (attempt: number) => new Promise((r) => setTimeout(r, 100 * 2 ** attempt + Math.random() * 100));

