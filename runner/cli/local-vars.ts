// Local configuration: .dev.vars as wrangler reads it, created with fresh
// secrets on first use, with the process environment overriding any key.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { formatVars, generateLocalSecrets, parseVars } from "../dev/secrets.ts";
import { ROOT } from "../dev/stack.ts";

export const DEV_VARS = join(ROOT, ".dev.vars");

/** Names the environment may override beyond those already in .dev.vars. */
const OVERRIDABLE = /^(DATABASE_URL(_[A-Z0-9_]+)?|BACKUP_[A-Z_]+|DATABASE_[A-Z_]+|STORAGE_[A-Z_]+|ML_[A-Z_]+|DR_[A-Z_]+|RTO_TARGET_MINUTES|RPO_TARGET_MINUTES|JOB_LEASE_SECONDS)$/;

export async function loadLocalVars(): Promise<{ vars: Record<string, string>; created: boolean }> {
  let created = false;
  if (!existsSync(DEV_VARS)) {
    const secrets = await generateLocalSecrets();
    const header = "# Local secrets and config for wrangler dev (npm start). Never commit this file.\n";
    writeFileSync(DEV_VARS, header + formatVars({ ...secrets }), { mode: 0o600 });
    created = true;
  }
  const vars = parseVars(readFileSync(DEV_VARS, "utf8"));
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && (key in vars || OVERRIDABLE.test(key))) vars[key] = value;
  }
  return { vars, created };
}
