// A job failure with a stable code for the catalog and the operator.
export class JobFailure extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/** Removes connection strings and the given secrets from text bound for logs or the catalog. */
export function scrub(text: string, secrets: string[] = []): string {
  let out = text.replace(/postgres(ql)?:\/\/\S+/gi, "postgres://…");
  for (const s of secrets) if (s.length >= 4) out = out.split(s).join("…");
  return out;
}
