/**
 * Removes connection strings, the userinfo of any URL (an MLflow URI with
 * user:pass@, an S3 endpoint…) and the given secrets, with the password
 * inside any secret URL, raw and decoded, from text bound for logs or the
 * catalog.
 */
export function scrub(text: string, secrets: string[] = []): string {
  let out = text.replace(/postgres(ql)?:\/\/\S+/gi, "postgres://…");
  out = out.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@]+@/gi, "$1…@");
  const parts = [...secrets, ...secrets.flatMap(userinfoOf)].filter((s) => s.length >= 4).sort((a, b) => b.length - a.length);
  for (const s of parts) out = out.split(s).join("…");
  return out;
}

/** A secret URL's password, as written and decoded: libpq and HTTP clients echo either. (User names are not secrets, and scrubbing a common one would garble every message.) */
function userinfoOf(secret: string): string[] {
  let url: URL;
  try {
    url = new URL(secret);
  } catch {
    return [];
  }
  const raw = [url.password].filter(Boolean);
  return [...raw, ...raw.map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  })];
}
