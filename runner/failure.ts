/** Removes connection strings and the given secrets from text bound for logs or the catalog. */
export function scrub(text: string, secrets: string[] = []): string {
  let out = text.replace(/postgres(ql)?:\/\/\S+/gi, "postgres://…");
  for (const s of secrets) if (s.length >= 4) out = out.split(s).join("…");
  return out;
}
