// Manifest authentication. A manifest names the chunks a restore feeds to
// pg_restore (or to MLflow). The age recipients are public and R2 checks only
// that bytes match their own SHA-256, so anyone able to write to the bucket
// could plant a manifest whose chunks decrypt cleanly. Every manifest
// therefore carries a MAC, keyed by MANIFEST_MAC_KEY: a Worker secret the
// runner never receives (it is not in any dispatch), so neither a compromised
// runner nor a leaked R2 credential can produce one.
//
// The MAC is HMAC-SHA256 over the manifest object's exact bytes, with the
// UTF-8 bytes of the key as the HMAC key, in hex, stored in the object's
// custom metadata as `astrid-mac: hmac-sha256:<hex>`. That is exactly what
// `openssl dgst -sha256 -hmac "$MANIFEST_MAC_KEY" manifest.json` prints, so
// the break-glass path can check it with standard tools (docs/format.md).
//
// Why a new secret and not one derived from JOB_TOKEN_SECRET: that one is
// rotated whenever a runner may have been compromised, and rotating must not
// turn every existing manifest into an unauthenticated one; a separate key is
// also what the break-glass operator needs to hold, and nothing more.
// MANIFEST_MAC_KEY may list several keys, comma-separated: the first signs,
// all verify (rotation: add the new key first, deploy, sign, later drop the old).
//
// Manifests written before MACs existed have none: they stay restorable,
// flagged "unauthenticated". MANIFEST_MAC_SINCE (an ISO date) closes that
// door for anything uploaded after it: R2 sets an object's upload time, an
// attacker cannot, so a MAC-less manifest uploaded since then is a forgery.
import type { Env } from "../env.ts";
import { MAC_METADATA, MAC_SCHEME, manifestMac } from "../shared/format.ts";

export { MAC_METADATA };


/** Database, ML and change-stream segment manifests: what restores and verifies read (storage snapshot manifests are the Worker's own). */
export const isChunkManifestKey = (key: string) => /^manifests\/((database|ml)\/[^/]+|continuous\/[^/]+\/\d+-[A-Za-z0-9_-]+)\.json$/.test(key);

export type ManifestAuth = "authenticated" | "unauthenticated" | "forged";

function macKeys(env: Env): string[] {
  const raw = env.MANIFEST_MAC_KEY;
  return typeof raw === "string" ? raw.split(",").map((s) => s.trim()).filter(Boolean) : [];
}

/** True when the Worker holds a MAC key: new manifests get a MAC and must keep it. */
export const macConfigured = (env: Env) => macKeys(env).length > 0;

/** The metadata a manifest is stored with, or {} when no key is configured. */
export async function macMetadata(env: Env, bytes: ArrayBuffer | Uint8Array): Promise<Record<string, string>> {
  const [signing] = macKeys(env);
  return signing ? { [MAC_METADATA]: await manifestMac(signing, bytes) } : {};
}

function macSince(env: Env): number | undefined {
  const raw = env.MANIFEST_MAC_SINCE;
  const t = typeof raw === "string" && raw ? Date.parse(raw) : NaN;
  return Number.isNaN(t) ? undefined : t;
}

/** Equal-time comparison of two hex strings (a MAC check must not leak how much matched). */
function sameHex(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** What a stored manifest's MAC says about `bytes`, its content. */
export async function manifestAuth(env: Env, object: Pick<R2Object, "customMetadata" | "uploaded">, bytes: ArrayBuffer | Uint8Array): Promise<ManifestAuth> {
  const stored = object.customMetadata?.[MAC_METADATA];
  const keys = macKeys(env);
  if (stored === undefined) {
    const since = macSince(env);
    return since !== undefined && object.uploaded.getTime() >= since ? "forged" : "unauthenticated";
  }
  if (!stored.startsWith(MAC_SCHEME)) return "forged";
  if (keys.length === 0) return "unauthenticated"; // cannot be checked here; never upgraded to authenticated
  for (const key of keys) if (sameHex(await manifestMac(key, bytes), stored)) return "authenticated";
  return "forged";
}

/** Reads a manifest whole and checks its MAC: the bytes (for parsing) and the verdict. */
export async function readAuthenticated(env: Env, key: string): Promise<{ bytes: ArrayBuffer; auth: ManifestAuth; object: R2Object } | undefined> {
  const object = await env.BACKUPS.get(key);
  if (!object) return undefined;
  const bytes = await object.arrayBuffer();
  return { bytes, auth: await manifestAuth(env, object, bytes), object };
}
