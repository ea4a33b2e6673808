// Local configuration: .dev.vars as wrangler reads it. Whatever local secret
// it lacks (all of them on first use, or those a user's own .dev.vars left
// out) is generated and added to it, and said so; the process environment
// overrides any setting.
import { appendFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { formatVars, generateLocalSecrets, parseVars, type LocalSecrets } from "../dev/secrets.ts";
import { ROOT } from "../dev/stack.ts";
import { isConfigVariable } from "../../workers/config.ts";

/** Where npm start keeps .dev.vars and its state (.wrangler/astrid): the checkout, unless ASTRID_HOME names another folder. */
export const LOCAL_HOME = process.env.ASTRID_HOME || ROOT;
export const DEV_VARS = join(LOCAL_HOME, ".dev.vars");


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
    // The environment overrides .dev.vars for every variable the config reads (workers/config.ts).
    if (value !== undefined && (key in vars || isConfigVariable(key))) vars[key] = value;
  }
  return { vars, created, added: created ? [] : missing };
}
