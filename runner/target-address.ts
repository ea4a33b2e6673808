// A restore target given as a URL is checked again here, on the runner, right
// before connecting: the Worker cannot resolve names, so a name that resolves
// to a link-local, metadata or (by policy) loopback address would otherwise
// pass. Every address the host resolves to is checked against the policy
// the dispatch carries (workers/shared/target-policy.ts), and the connection
// then goes to the address that was checked, never through a second lookup:
// libpq gets it as `hostaddr` (the name stays `host`, for TLS), HTTP requests
// to MLflow connect to it through a fixed `lookup` (the URL, Host header and
// TLS name stay the host's). So a DNS answer that changes between the check
// and the connection (rebinding) changes nothing.
import { lookup } from "node:dns/promises";
import http from "node:http";
import https from "node:https";
import { isIP, type LookupFunction } from "node:net";
import { Readable } from "node:stream";
import { AppError } from "../workers/shared/errors.ts";
import { addressProblem, bareHost, hostListed, type TargetPolicy } from "../workers/shared/target-policy.ts";

/** Name resolution, behind one narrow interface (tests give their own). */
export interface Resolver {
  /** Every address the name resolves to. */
  resolve(host: string): Promise<string[]>;
}

export const systemResolver: Resolver = {
  async resolve(host) {
    return (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);
  },
};

/**
 * The address to connect to for `host`: its only address if it is one, else
 * the first it resolves to, after every resolved address passed the policy.
 * A host on the allowlist is the operator's word: resolved, not checked.
 */
export async function checkedAddress(host: string, policy: TargetPolicy, resolver: Resolver = systemResolver): Promise<string> {
  const name = bareHost(host);
  const listed = policy.allow.length > 0 && hostListed(name, policy.allow);
  if (policy.allow.length > 0 && !listed) throw new AppError("target_refused", `restore target host ${name} is not in RESTORE_TARGET_HOSTS`);
  let addresses: string[];
  if (isIP(name)) addresses = [name];
  else {
    try {
      addresses = await resolver.resolve(name);
    } catch (e) {
      throw new AppError("target_unreachable", `cannot resolve the restore target host ${name}: ${(e as Error).message}`);
    }
  }
  if (addresses.length === 0) throw new AppError("target_unreachable", `the restore target host ${name} resolves to no address`);
  if (!listed) {
    for (const address of addresses) {
      const problem = addressProblem(address, policy) ?? addressProblem(name, policy);
      if (problem) throw new AppError("target_refused", `restore target host ${name} resolves to ${address}, ${problem}: refused`);
    }
  }
  return addresses[0]!;
}

/**
 * The postgres:// target with the checked address as `hostaddr` (libpq then
 * connects there without a lookup; `host` stays the name, for TLS and the
 * server's view). A Unix socket directory is local by definition and left as is.
 */
export async function pinnedPostgresUrl(url: string, policy: TargetPolicy | undefined, resolver?: Resolver): Promise<string> {
  if (!policy) return url;
  const parsed = new URL(url);
  const host = decodeURIComponent(parsed.hostname);
  if (host === "" || host.startsWith("/")) return url;
  parsed.searchParams.set("hostaddr", await checkedAddress(host, policy, resolver));
  return parsed.toString();
}

/** A `lookup` that answers with one fixed address, whatever the name. */
export function fixedLookup(address: string): LookupFunction {
  const family = isIP(address) === 6 ? 6 : 4;
  return ((_host: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    if (options?.all) callback(null, [{ address, family }]);
    else callback(null, address, family);
  }) as LookupFunction;
}

/**
 * fetch(), connecting to a fixed address: the URL (its host, the Host header,
 * the TLS name and certificate check) is unchanged. For the MLflow client's
 * JSON requests: bodies are strings or bytes.
 */
export function pinnedFetch(address: string): (url: string, init?: RequestInit) => Promise<Response> {
  const lookupFn = fixedLookup(address);
  return (url, init = {}) => new Promise((resolve, reject) => {
    const u = new URL(url);
    const transport = u.protocol === "https:" ? https : http;
    const headers = Object.fromEntries(new Headers(init.headers).entries());
    const body = init.body;
    if (body !== undefined && body !== null && typeof body !== "string" && !(body instanceof Uint8Array)) {
      reject(new Error("pinnedFetch sends string or byte bodies only"));
      return;
    }
    const bytes = body === undefined || body === null ? undefined : typeof body === "string" ? Buffer.from(body) : body;
    // A known length, as fetch sends it: some servers (MLflow's among them) do not read a chunked body.
    if (bytes) headers["content-length"] = String(bytes.length);
    const req = transport.request(u, { method: init.method ?? "GET", headers, lookup: lookupFn, ...(init.signal ? { signal: init.signal } : {}) }, (res) => {
      const h = new Headers();
      for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) h.set(k, Array.isArray(v) ? v.join(", ") : v);
      const status = res.statusCode ?? 0;
      const body = [204, 205, 304].includes(status) || init.method === "HEAD" ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>);
      if (!body) res.resume();
      resolve(new Response(body, { status, headers: h }));
    });
    req.on("error", reject);
    req.end(bytes);
  });
}
