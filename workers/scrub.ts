// What the Worker stores or shows of text it did not write itself (a
// runner's error message): every configured secret value removed, and the
// userinfo of any URL. The runner scrubs its own messages too (runner/failure.ts);
// this is the Worker's own guard, so a runner bug cannot put a secret in front of viewers.
import type { Env } from "./env.ts";

/**
 * Settings whose values are secrets (comma lists are split). Not the MLflow
 * tracking URIs: they may not carry credentials (config.ts refuses userinfo),
 * and the host in "cannot reach the MLflow server at …" is what an operator needs.
 */
const SECRET_NAMES = /^(ADMIN_TOKEN|VIEWER_TOKEN|RUNNER_TOKEN|JOB_TOKEN_SECRET|CHUNK_ID_KEY|AGE_IDENTITY|MANIFEST_MAC_KEY|DATABASE_URL(_[A-Z0-9_]+)?|MLFLOW_TRACKING_TOKEN(_[A-Z0-9_]+)?|R2_SECRET_ACCESS_KEY|OFFSITE_SECRET_ACCESS_KEY|CLOUDFLARE_API_TOKEN)$/;

function secretValues(env: Env): string[] {
  const values: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (!SECRET_NAMES.test(name) || typeof value !== "string") continue;
    for (const v of value.split(",").map((s) => s.trim())) {
      if (v.length < 8) continue;
      values.push(v);
      try {
        const password = new URL(v).password;
        if (password.length >= 4) values.push(password, decodeURIComponent(password));
      } catch {
        // not a URL
      }
    }
  }
  return values.sort((a, b) => b.length - a.length);
}

export function scrubSecrets(env: Env, text: string): string {
  let out = text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@]+@/gi, "$1…@");
  for (const s of secretValues(env)) out = out.split(s).join("…");
  return out;
}
