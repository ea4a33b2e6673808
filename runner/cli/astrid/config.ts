// Where the CLI finds the API and its token: ASTRID_API_URL and ASTRID_TOKEN,
// else a config file ({"url": ..., "token": ...}) at $ASTRID_CONFIG or
// $XDG_CONFIG_HOME/astrid-backup/config.json (~/.config/... by default). A
// file holding a token must be readable by its owner only (mode 0600): the
// admin token can start restores over databases. There is no --token flag, so
// the token never shows in `ps` or a shell history.
import { readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { CliError, EXIT, UsageError } from "./errors.ts";

export interface Connection {
  url: string;
  token: string;
}

interface ConfigFile {
  url?: string;
  token?: string;
}

export function configPath(env: NodeJS.ProcessEnv): string {
  if (env.ASTRID_CONFIG) return env.ASTRID_CONFIG;
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), ".config");
  return join(base, "astrid-backup", "config.json");
}

function readConfigFile(path: string): ConfigFile {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw new UsageError(`cannot read the config file ${path}: ${(e as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new UsageError(`the config file ${path} is not valid JSON`);
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new UsageError(`the config file ${path} must hold a JSON object {"url", "token"}`);
  const { url, token, ...rest } = parsed as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length) throw new UsageError(`the config file ${path} has unknown keys: ${unknown.join(", ")} (only "url" and "token")`);
  if (url !== undefined && typeof url !== "string") throw new UsageError(`the config file ${path}: "url" must be a string`);
  if (token !== undefined && typeof token !== "string") throw new UsageError(`the config file ${path}: "token" must be a string`);
  if (token !== undefined && process.platform !== "win32") {
    const mode = statSync(path).mode & 0o777;
    if (mode & 0o077) {
      throw new CliError(`the config file ${path} holds a token but is readable by others (mode ${mode.toString(8).padStart(4, "0")}); run: chmod 600 ${path}`, EXIT.auth);
    }
  }
  return { ...(url !== undefined ? { url } : {}), ...(token !== undefined ? { token } : {}) };
}

/** The environment wins over the file, a --url flag over both. */
export function loadConnection(env: NodeJS.ProcessEnv, flags: { url?: string | undefined }): Connection {
  const needFile = !(flags.url ?? env.ASTRID_API_URL) || !env.ASTRID_TOKEN;
  const file = needFile ? readConfigFile(configPath(env)) : {};
  const url = flags.url ?? env.ASTRID_API_URL ?? file.url;
  const token = env.ASTRID_TOKEN ?? file.token;
  if (!url) throw new UsageError(`no API URL: set ASTRID_API_URL, pass --url, or put "url" in ${configPath(env)}`);
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new Error();
  } catch {
    throw new UsageError(`the API URL "${url}" is not an http(s) URL`);
  }
  if (!token) throw new CliError(`no token: set ASTRID_TOKEN or put "token" in ${configPath(env)} (mode 0600)`, EXIT.auth);
  return { url: url.replace(/\/+$/, ""), token };
}
