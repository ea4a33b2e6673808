// Cloudflare Access in front of the admin API. When CF_ACCESS_TEAM_DOMAIN
// (e.g. astrid.cloudflareaccess.com) and CF_ACCESS_AUD (the Access
// application's audience tag) are set, every admin API request must carry a
// Cf-Access-Jwt-Assertion that verifies: RS256 by one of the team's keys,
// `aud` containing CF_ACCESS_AUD, `iss` the team domain, inside exp/nbf. The
// person recorded in the audit log is the verified token's `email`; the
// cf-access-authenticated-user-email header is never trusted (anyone can send
// it when a request does not pass through Access).
// (developers.cloudflare.com/cloudflare-one/identity/authorization-cookie/validating-json/)
//
// The team's keys come through one narrow interface, AccessKeys: the real one
// fetches https://<team>/cdn-cgi/access/certs (cached for an hour per isolate);
// tests bind ACCESS_KEYS to a stand-in.
import type { Env } from "./env.ts";
import type { BackupConfig } from "./config.ts";
import { fromBase64url } from "./crypto.ts";

export interface AccessKeys {
  keys(): Promise<(JsonWebKey & { kid?: string })[]>;
}

export interface AccessSettings {
  team: string;
  aud: string;
}

/** The Access application to check assertions against, when both settings are set. */
export function accessSettings(config: BackupConfig): AccessSettings | undefined {
  const team = config.cf_access_team_domain.trim().replace(/^https:\/\//, "").replace(/\/+$/, "");
  const aud = config.cf_access_aud.trim();
  return team && aud ? { team, aud } : undefined;
}

const cache = new Map<string, { at: number; keys: (JsonWebKey & { kid?: string })[] }>();
const CACHE_MS = 3600_000;

function certsFromTeam(team: string): AccessKeys {
  return {
    async keys() {
      const hit = cache.get(team);
      if (hit && Date.now() - hit.at < CACHE_MS) return hit.keys;
      const res = await fetch(`https://${team}/cdn-cgi/access/certs`);
      if (!res.ok) throw new Error(`Access certs: HTTP ${res.status}`);
      const keys = ((await res.json()) as { keys?: (JsonWebKey & { kid?: string })[] }).keys ?? [];
      cache.set(team, { at: Date.now(), keys });
      return keys;
    },
  };
}

export function accessKeys(env: Env, settings: AccessSettings): AccessKeys {
  const injected = env.ACCESS_KEYS as Partial<AccessKeys> | undefined;
  return injected && typeof injected === "object" && typeof injected.keys === "function" ? (injected as AccessKeys) : certsFromTeam(settings.team);
}

const decodeJson = (part: string) => JSON.parse(new TextDecoder().decode(fromBase64url(part))) as Record<string, unknown>;

/** The verified token's email (or subject), or a reason it is refused. */
export async function verifyAccessJwt(token: string | undefined, settings: AccessSettings, keys: AccessKeys, now = Date.now()): Promise<{ email: string } | { refused: string }> {
  if (!token) return { refused: "missing Cf-Access-Jwt-Assertion" };
  const parts = token.split(".");
  if (parts.length !== 3) return { refused: "malformed assertion" };
  let header: Record<string, unknown>;
  let claims: Record<string, unknown>;
  try {
    header = decodeJson(parts[0]!);
    claims = decodeJson(parts[1]!);
  } catch {
    return { refused: "malformed assertion" };
  }
  if (header.alg !== "RS256") return { refused: "unsupported algorithm" };
  const jwk = (await keys.keys()).find((k) => k.kid === header.kid);
  if (!jwk) return { refused: "unknown signing key" };
  let valid = false;
  try {
    const key = await crypto.subtle.importKey("jwk", jwk, { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, false, ["verify"]);
    valid = await crypto.subtle.verify("RSASSA-PKCS1-v1_5", key, fromBase64url(parts[2]!), new TextEncoder().encode(`${parts[0]}.${parts[1]}`));
  } catch {
    valid = false;
  }
  if (!valid) return { refused: "bad signature" };
  const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!aud.includes(settings.aud)) return { refused: "wrong audience" };
  if (claims.iss !== `https://${settings.team}`) return { refused: "wrong issuer" };
  const secs = now / 1000;
  if (typeof claims.exp !== "number" || claims.exp < secs) return { refused: "expired" };
  if (typeof claims.nbf === "number" && claims.nbf > secs + 60) return { refused: "not yet valid" };
  const who = typeof claims.email === "string" ? claims.email : typeof claims.sub === "string" ? `service:${claims.sub}` : "unknown";
  return { email: who };
}
