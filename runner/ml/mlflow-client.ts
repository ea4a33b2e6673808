// MLflow's REST API, as the runner uses it: JSON calls with retries for
// transient failures, artifacts streamed through the server's artifact proxy
// (/api/2.0/mlflow-artifacts/artifacts/...), and failures turned into job
// errors an operator can act on. The token travels only in the
// Authorization header and never appears in an error message.
import http from "node:http";
import https from "node:https";
import type { MlflowAccess } from "../../workers/ml/protocol.ts";
import { AppError } from "../../workers/shared/errors.ts";
import { fixedLookup, pinnedFetch } from "../target-address.ts";

const ATTEMPTS = 4;
const TIMEOUT_MS = 60_000;

export class MlflowClient {
  readonly base: string;
  private readonly token: string | undefined;
  /** A restore target given as a URL: the address its host was checked at; every request connects there (target-address.ts). */
  private readonly address: string | undefined;
  constructor(access: MlflowAccess, opts: { address?: string } = {}) {
    this.base = access.tracking_uri.replace(/\/+$/, "");
    this.token = access.token;
    this.address = opts.address;
  }

  /** Fails fast, with a clear code, if the server is unreachable or refuses the token. */
  async check(): Promise<void> {
    await this.call("GET", "experiments/search", { max_results: "1" });
  }

  get<T = any>(endpoint: string, query: Record<string, string> = {}): Promise<T> {
    return this.call("GET", endpoint, query);
  }

  post<T = any>(endpoint: string, body: unknown): Promise<T> {
    return this.call("POST", endpoint, undefined, body);
  }

  patch<T = any>(endpoint: string, body: unknown): Promise<T> {
    return this.call("PATCH", endpoint, undefined, body);
  }

  delete<T = any>(endpoint: string, body: unknown): Promise<T> {
    return this.call("DELETE", endpoint, undefined, body);
  }

  /** Every page of a paginated call; `field` names the list in each answer. */
  async *pages<T>(method: "GET" | "POST", endpoint: string, field: string, params: Record<string, unknown>): AsyncGenerator<T[]> {
    let token: string | undefined;
    do {
      const page: any = method === "GET"
        ? await this.get(endpoint, { ...(params as Record<string, string>), ...(token ? { page_token: token } : {}) })
        : await this.post(endpoint, { ...params, ...(token ? { page_token: token } : {}) });
      yield (page[field] ?? []) as T[];
      token = page.next_page_token || undefined;
    } while (token);
  }

  private async call(method: string, endpoint: string, query?: Record<string, string>, body?: unknown): Promise<any> {
    const url = `${this.base}/api/2.0/mlflow/${endpoint}${query && Object.keys(query).length ? `?${new URLSearchParams(query)}` : ""}`;
    const res = await this.send(url, {
      method, headers: { ...this.auth(), ...(body === undefined ? {} : { "content-type": "application/json" }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    }, endpoint);
    const text = await res.text();
    if (!res.ok) throw this.failure(res.status, text, endpoint);
    try {
      return text ? JSON.parse(text) : {};
    } catch {
      // JSON.parse's message quotes the text: a server that is not MLflow must not have its answer shown.
      throw new AppError("mlflow_not_mlflow", `${endpoint}: the server answered HTTP ${res.status} with ${text.length} bytes that are not JSON: is it an MLflow server?`);
    }
  }

  /** The path of an `mlflow-artifacts:` URI on the artifact proxy. */
  private artifactPath(uri: string): string {
    const m = /^mlflow-artifacts:(?:\/\/[^/]*)?\/(.*)$/.exec(uri);
    if (!m) throw new AppError("artifacts_not_proxied", `artifact location ${uri} is not served by the MLflow server (start it with --serve-artifacts)`);
    return m[1]!;
  }

  /** The artifact proxy URL of a path under an `mlflow-artifacts:` URI. */
  artifactUrl(uri: string): string {
    return `${this.base}/api/2.0/mlflow-artifacts/artifacts/${this.artifactPath(uri).split("/").map(encodeURIComponent).join("/")}`;
  }

  /**
   * One directory level under an `mlflow-artifacts:` URI, through the
   * artifact proxy's own listing (half the server time of artifacts/list,
   * which looks the run up on every call). Paths come back relative to `uri`.
   */
  async listArtifacts(uri: string): Promise<{ path: string; is_dir: boolean; file_size?: number }[]> {
    const url = `${this.base}/api/2.0/mlflow-artifacts/artifacts?${new URLSearchParams({ path: this.artifactPath(uri) })}`;
    const res = await this.send(url, { method: "GET", headers: this.auth() }, "artifact listing");
    const text = await res.text();
    if (!res.ok) throw this.failure(res.status, text, "artifact listing");
    const files = (text ? JSON.parse(text).files : undefined) ?? [];
    return files.map((f: any) => ({ path: String(f.path), is_dir: !!f.is_dir, ...(f.file_size === undefined ? {} : { file_size: Number(f.file_size) }) }));
  }

  /** A streamed artifact download; a 404 means the artifact is gone. */
  async download(uri: string, what: string): Promise<AsyncIterable<Uint8Array>> {
    const res = await this.send(this.artifactUrl(uri), { method: "GET", headers: this.auth() }, "artifact download");
    if (res.status === 404) throw new AppError("artifact_missing", `${what} disappeared from the MLflow server during the export`);
    if (!res.ok) throw this.failure(res.status, await res.text(), "artifact download");
    return res.body as unknown as AsyncIterable<Uint8Array>;
  }

  /**
   * Uploads `size` bytes, with a content-length (the proxy wants one), to an
   * `mlflow-artifacts:` URI. `source` is called again for a retry, so a
   * connection the server dropped costs one more pass, not the job.
   */
  async upload(uri: string, size: number, source: () => AsyncIterable<Uint8Array>): Promise<void> {
    let last: Error | undefined;
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      let status: { code: number; text: string };
      try {
        status = await this.uploadOnce(new URL(this.artifactUrl(uri)), size, source());
      } catch (e) {
        if (e instanceof AppError) throw e; // the backup's own bytes: retrying will not help
        last = e as Error;
        if (attempt < ATTEMPTS) await new Promise((r) => setTimeout(r, 250 * 4 ** (attempt - 1)));
        continue;
      }
      if (status.code >= 200 && status.code < 300) return;
      if (status.code < 500 && status.code !== 429) throw this.failure(status.code, status.text, "artifact upload");
      last = new Error(`HTTP ${status.code} ${status.text.slice(0, 200)}`);
    }
    throw new AppError("mlflow_unreachable", `MLflow artifact upload to ${this.base} failed: ${last?.message}`);
  }

  private uploadOnce(url: URL, size: number, body: AsyncIterable<Uint8Array>): Promise<{ code: number; text: string }> {
    const client = url.protocol === "https:" ? https : http;
    return new Promise((resolve, reject) => {
      // A fresh connection per upload: reusing one the server is closing ends in "socket hang up".
      const req = client.request(url, {
        method: "PUT", agent: false, timeout: TIMEOUT_MS, ...(this.address ? { lookup: fixedLookup(this.address) } : {}),
        headers: { ...this.auth(), "content-length": String(size), "content-type": "application/octet-stream" },
      }, (res) => {
        let text = "";
        res.setEncoding("utf8").on("data", (d: string) => (text = (text + d).slice(0, 2000))).on("end", () => resolve({ code: res.statusCode ?? 0, text }));
      });
      req.on("error", reject);
      req.on("timeout", () => req.destroy(new Error("timed out")));
      (async () => {
        for await (const part of body) if (!req.write(part)) await new Promise((r) => req.once("drain", r));
        req.end();
      })().catch((e) => {
        req.destroy();
        reject(e);
      });
    });
  }

  private auth(): Record<string, string> {
    return this.token ? { authorization: `Bearer ${this.token}` } : {};
  }

  private async send(url: string, init: RequestInit, what: string): Promise<Response> {
    let last = "";
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      try {
        const res = await (this.address ? pinnedFetch(this.address) : fetch)(url, { ...init, signal: AbortSignal.timeout(TIMEOUT_MS) });
        if (res.status < 500 && res.status !== 429) return res;
        last = `HTTP ${res.status} ${mlflowError(await res.text()) ?? ""}`.trim();
      } catch (e) {
        last = (e as Error).cause ? `${(e as Error).message} (${((e as Error).cause as Error).message ?? (e as Error).cause})` : (e as Error).message;
        if (attempt === ATTEMPTS) throw new AppError("mlflow_unreachable", `cannot reach the MLflow server at ${this.base} (${what}): ${last}`);
      }
      if (attempt < ATTEMPTS) await new Promise((r) => setTimeout(r, 250 * 4 ** (attempt - 1)));
    }
    throw new AppError("mlflow_server_error", `the MLflow server failed ${what}: ${last}`);
  }

  private failure(status: number, text: string, what: string): AppError {
    const err = parseMlflowError(text);
    // Only MLflow's own error answers are quoted (job errors reach viewers): a restore target that is some other
    // service must not have its answer echoed, so anything else is reported by size only.
    const message = err ? err.message : `(${text.length} bytes, not an MLflow error answer)`;
    if (status === 401 || status === 403) return new AppError("mlflow_auth_failed", `the MLflow server refused the credentials (HTTP ${status}) on ${what}`);
    if (status === 404 || err?.code === "RESOURCE_DOES_NOT_EXIST") return new AppError("mlflow_not_found", `${what}: ${message}`);
    return new AppError("mlflow_request_failed", `${what}: HTTP ${status} ${err?.code ?? ""} ${message}`.trim());
  }
}

/** MLflow's error answer ({"error_code", "message"}), its message cut to 300 characters; undefined for anything else. */
function parseMlflowError(text: string): { code: string; message: string } | undefined {
  try {
    const body = JSON.parse(text) as { error_code?: unknown; message?: unknown };
    if (typeof body?.error_code !== "string") return undefined;
    return { code: body.error_code, message: typeof body.message === "string" ? body.message.slice(0, 300) : "" };
  } catch {
    return undefined;
  }
}

const mlflowError = (text: string) => {
  const err = parseMlflowError(text);
  return err && `${err.code} ${err.message}`;
};
