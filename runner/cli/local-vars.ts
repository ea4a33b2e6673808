// Local configuration: .dev.vars as wrangler reads it. Whatever local secret
// it lacks (all of them on first use, or those a user's own .dev.vars left
// out) is generated and added to it, and said so; the process environment
// overrides any setting.
import { appendFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { formatVars, generateLocalSecrets, parseVars, type LocalSecrets } from "../dev/secrets.ts";
import { ROOT } from "../dev/stack.ts";

/** Where npm start keeps .dev.vars and its state (.wrangler/astrid): the checkout, unless ASTRID_HOME names another folder. */
export const LOCAL_HOME = process.env.ASTRID_HOME || ROOT;
export const DEV_VARS = join(LOCAL_HOME, ".dev.vars");

/** Names the environment may override beyond those already in .dev.vars: every setting and secret the Worker reads. */
const OVERRIDABLE = /^(DATABASE_URL(_[A-Z0-9_]+)?|BACKUP_[A-Z_]+|DATABASE_[A-Z_]+|STORAGE_[A-Z_]+|ML_[A-Z_]+|MLFLOW_[A-Z_]+|DR_[A-Z_]+|OFFSITE_[A-Z_]+|R2_[A-Z_]+|CLOUDFLARE_[A-Z_]+|GC_[A-Z_]+|REPOSITORY_[A-Z_]+|RUNNER_MAX_JOBS|RTO_TARGET_MINUTES|RPO_TARGET_MINUTES|JOB_LEASE_SECONDS)$/;

export async function loadLocalVars(): Promise<{ vars: Record<string, string>; created: boolean; added: string[] }> {
  const created = !existsSync(DEV_VARS);
  if (created) writeFileSync(DEV_VARS, "# Local secrets and config for wrangler dev (npm start). Never commit this file.\n", { mode: 0o600 });
  const vars = parseVars(readFileSync(DEV_VARS, "utf8"));
  const fresh = await generateLocalSecrets();
  // An encryption key goes with its identity: only generate the pair when both are missing.
  const pairMissing = !vars.AGE_IDENTITY && !vars.BACKUP_ENCRYPTION_KEY;
  const missing = (Object.keys(fresh) as (keyof LocalSecrets)[])
    .filter((k) => !vars[k] && (pairMissing || (k !== "AGE_IDENTITY" && k !== "BACKUP_ENCRYPTION_KEY")));
  if (missing.length) {
    const additions = Object.fromEntries(missing.map((k) => [k, fresh[k]]));
    appendFileSync(DEV_VARS, formatVars(additions));
    Object.assign(vars, additions);
  }
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && (key in vars || OVERRIDABLE.test(key))) vars[key] = value;
  }
  return { vars, created, added: created ? [] : missing };
}
