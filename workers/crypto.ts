// Small Web Crypto helpers shared by auth, job tokens and sealed values.
const encoder = new TextEncoder();

export function toHex(bytes: ArrayBuffer | Uint8Array): string {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export function base64url(bytes: Uint8Array): string {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function fromBase64url(text: string): Uint8Array {
  const bin = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

export async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

/** Equal-time comparison: hashing first makes both sides the same length. */
export async function secretsEqual(a: string, b: string): Promise<boolean> {
  const [ha, hb] = await Promise.all([sha256(a), sha256(b)]);
  return crypto.subtle.timingSafeEqual(ha, hb);
}

async function hmacKey(secret: string, purpose: string): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", encoder.encode(`${purpose}\0${secret}`), { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
}

export async function hmac(secret: string, purpose: string, data: string): Promise<Uint8Array> {
  const key = await hmacKey(secret, purpose);
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(data)));
}

export async function hmacVerify(secret: string, purpose: string, data: string, mac: Uint8Array): Promise<boolean> {
  const key = await hmacKey(secret, purpose);
  return crypto.subtle.verify("HMAC", key, mac, encoder.encode(data));
}

async function sealKey(secret: string): Promise<CryptoKey> {
  const raw = await sha256(`seal\0${secret}`);
  return crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
}

/**
 * A secret setting that may list several values, comma-separated, so it can
 * be rotated (JOB_TOKEN_SECRET): the first signs or seals, every one verifies
 * or unseals. Add the new value first, deploy, drop the old one a lease later.
 */
export function secretList(secret: string): string[] {
  const list = secret.split(",").map((s) => s.trim()).filter(Boolean);
  return list.length ? list : [secret];
}

/** AES-GCM-seals a value (a target URL) so the catalog holds it only unreadably. */
export async function seal(secret: string, plaintext: string): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const sealed = await crypto.subtle.encrypt({ name: "AES-GCM", iv }, await sealKey(secretList(secret)[0]!), encoder.encode(plaintext));
  return `${base64url(iv)}.${base64url(new Uint8Array(sealed))}`;
}

export async function unseal(secret: string, sealed: string): Promise<string> {
  const [iv, data] = sealed.split(".");
  if (!iv || !data) throw new Error("malformed sealed value");
  let last: unknown;
  for (const s of secretList(secret)) {
    try {
      const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: fromBase64url(iv) }, await sealKey(s), fromBase64url(data));
      return new TextDecoder().decode(plain);
    } catch (e) {
      last = e;
    }
  }
  throw last;
}

export function randomId(length: number): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  return [...bytes].map((b) => alphabet[b % alphabet.length]).join("");
}
