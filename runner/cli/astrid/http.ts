// The admin API client, typed by the generated api-types.ts (from the
// OpenAPI document the Worker serves): a path, method, body or query the API
// does not have, or a field its answer does not carry, fails the type check.
import type { paths } from "./api-types.ts";
import { ApiError, CliError, EXIT } from "./errors.ts";
import type { Connection } from "./config.ts";

export type Method = "get" | "post" | "put" | "delete";

/** The paths that have an operation for `M`. */
export type PathOf<M extends Method> = { [P in keyof paths]: undefined extends paths[P][M] ? never : P }[keyof paths];
type Operation<P extends keyof paths, M extends Method> = NonNullable<paths[P][M]>;
type Responses<O> = O extends { responses: infer R } ? R : never;
type JsonOf<R> = R extends { content: { "application/json": infer B } } ? B : never;

/** The JSON body of the operation's success (2xx) answer. */
export type Answer<P extends keyof paths, M extends Method> = {
  [S in keyof Responses<Operation<P, M>>]: S extends 200 | 201 | 202 ? JsonOf<Responses<Operation<P, M>>[S]> : never;
}[keyof Responses<Operation<P, M>>];

export type RequestBody<P extends keyof paths, M extends Method> =
  Operation<P, M> extends { requestBody?: { content: { "application/json": infer B } } } ? B : never;
export type QueryOf<P extends keyof paths, M extends Method> = Operation<P, M> extends { parameters: { query?: infer Q } } ? NonNullable<Q> : never;

export interface CallOptions<P extends keyof paths, M extends Method> {
  /** Values for the path's {name} parameters. */
  params?: Record<string, string>;
  query?: QueryOf<P, M>;
  body?: RequestBody<P, M>;
}

export interface ApiClient {
  call<M extends Method, P extends PathOf<M>>(method: M, path: P, opts?: CallOptions<P, M>): Promise<Answer<P, M>>;
  /**
   * A route announced but not in the document this CLI was generated from (its
   * contract is written out where it is called); the test lists these calls and
   * checks each against the document once the route is there.
   */
  callPending(method: Method, path: string, body: unknown): Promise<unknown>;
}

export function fillPath(path: string, params: Record<string, string> = {}): string {
  return path.replace(/\{([A-Za-z_]+)\}/g, (_, name: string) => {
    const value = params[name];
    if (value === undefined) throw new Error(`no value for {${name}} in ${path}`);
    return encodeURIComponent(value);
  });
}

export function apiClient(conn: Connection, fetchImpl: typeof fetch = fetch): ApiClient {
  async function send(method: Method, path: string, query: Record<string, unknown> | undefined, body: unknown): Promise<unknown> {
    const url = new URL(conn.url + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    let res: Response;
    try {
      res = await fetchImpl(url, {
        method: method.toUpperCase(),
        headers: { authorization: `Bearer ${conn.token}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (e) {
      throw new CliError(`cannot reach the API at ${conn.url}: ${(e as Error).cause instanceof Error ? ((e as Error).cause as Error).message : (e as Error).message}`, EXIT.failed);
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (!res.ok) {
      const error = (parsed as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
      const code = typeof error?.code === "string" ? error.code : `http_${res.status}`;
      const message = typeof error?.message === "string" ? error.message : text.slice(0, 200) || res.statusText;
      throw new ApiError(res.status, code, message);
    }
    if (parsed === undefined && text) throw new CliError(`${method.toUpperCase()} ${path}: the API answered ${res.status} with a body that is not JSON`, EXIT.failed);
    return parsed;
  }
  return {
    call: async (method, path, opts = {}) =>
      (await send(method, fillPath(path, opts.params), opts.query as Record<string, unknown> | undefined, opts.body)) as never,
    callPending: (method, path, body) => send(method, path, undefined, body),
  };
}
