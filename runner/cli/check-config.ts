// npm run check-config: validates the configuration the Worker will run with
// (wrangler.toml vars + .dev.vars or the environment) and that wrangler.toml
// has a cron trigger for every schedule the config uses. Exits non-zero on any problem.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { configuredSchedules, DEFAULTS, isSecretSetting, loadConfig, SETTINGS } from "../../workers/config.ts";
import { ROOT } from "../dev/stack.ts";
import { loadLocalVars } from "./local-vars.ts";

const toml = readFileSync(join(ROOT, "wrangler.toml"), "utf8");
const crons = [...toml.matchAll(/^\s*"([^"]+)",?\s*(#.*)?$/gm)].map((m) => m[1]!);
const varsBlock = /\[vars\]([\s\S]*?)\n\[/.exec(toml)?.[1] ?? "";
const tomlVars = Object.fromEntries([...varsBlock.matchAll(/^\s*([A-Z_]+)\s*=\s*"([^"]*)"/gm)].map((m) => [m[1]!, m[2]!]));
const { vars } = await loadLocalVars();
try {
  const config = loadConfig({ ...tomlVars, ...vars });
  const missing = configuredSchedules(config).filter((s) => !crons.includes(s));
  if (missing.length) throw new Error(`wrangler.toml [triggers] crons lacks: ${missing.join(", ")}`);
  // Every plain setting, from the one settings table: variable, value (secrets: set or not), default, what it is.
  for (const [field, s] of Object.entries(SETTINGS) as [keyof typeof SETTINGS, (typeof SETTINGS)[keyof typeof SETTINGS]][]) {
    const value = config[field];
    const shown = isSecretSetting(field) ? (value ? "(set)" : "(not set)") : JSON.stringify(value);
    const changed = value !== DEFAULTS[field] ? "" : "  (default)";
    console.log(`  ${s.env.padEnd(34)} ${shown}${changed}   ${s.doc}`);
  }
  console.log(`config ok: databases ${Object.keys(config.databases).join(", ")}; ${config.encryption_recipients.length} recipient(s); schedules ${configuredSchedules(config).join(" | ")}`);
} catch (e) {
  console.error(`config invalid: ${(e as Error).message}`);
  process.exit(1);
}
