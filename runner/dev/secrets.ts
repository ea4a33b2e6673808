// Fresh secrets for a local installation (npm start, tests, benchmarks).
import { randomBytes } from "node:crypto";
import { generateX25519Identity, identityToRecipient } from "age-encryption";

export interface LocalSecrets {
  ADMIN_TOKEN: string;
  VIEWER_TOKEN: string;
  RUNNER_TOKEN: string;
  JOB_TOKEN_SECRET: string;
  CHUNK_ID_KEY: string;
  /** Keys manifest MACs; the Worker holds it, the runner never sees it. */
  MANIFEST_MAC_KEY: string;
  AGE_IDENTITY: string;
  BACKUP_ENCRYPTION_KEY: string;
}

export async function ageKeyPair(): Promise<{ identity: string; recipient: string }> {
  const identity = await generateX25519Identity();
  return { identity, recipient: await identityToRecipient(identity) };
}

export async function generateLocalSecrets(): Promise<LocalSecrets> {
  const token = (prefix: string) => `${prefix}_${randomBytes(24).toString("base64url")}`;
  const { identity, recipient } = await ageKeyPair();
  return {
    ADMIN_TOKEN: token("adm"),
    VIEWER_TOKEN: token("view"),
    RUNNER_TOKEN: token("run"),
    JOB_TOKEN_SECRET: randomBytes(32).toString("base64url"),
    CHUNK_ID_KEY: randomBytes(32).toString("hex"),
    MANIFEST_MAC_KEY: randomBytes(32).toString("hex"),
    AGE_IDENTITY: identity,
    BACKUP_ENCRYPTION_KEY: recipient,
  };
}

/** .dev.vars / .env syntax: KEY="value" lines. */
export function formatVars(vars: Record<string, string>): string {
  // dotenv (wrangler's --env-file) keeps backslashes inside double quotes, so a
  // value with double quotes in it (JSON, e.g. ML_DATASETS) goes in single quotes, which it takes literally.
  const quote = (v: string) => (v.includes('"') && !v.includes("'") && !v.includes("\n") ? `'${v}'` : JSON.stringify(v));
  return Object.entries(vars).map(([k, v]) => `${k}=${quote(v)}`).join("\n") + "\n";
}

export function parseVars(text: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const match = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)\s*$/.exec(line);
    if (!match) continue;
    const raw = match[2]!;
    vars[match[1]!] = raw.startsWith('"') ? (JSON.parse(raw) as string) : raw.startsWith("'") && raw.endsWith("'") ? raw.slice(1, -1) : raw;
  }
  return vars;
}
