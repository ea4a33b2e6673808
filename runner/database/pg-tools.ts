// Running the PostgreSQL client tools: credentials go through the environment
// (never argv), connection attempts time out, and their errors become job
// failures with codes an operator can act on.
import { spawn, type ChildProcess } from "node:child_process";
import { AppError } from "../../workers/shared/errors.ts";
import { scrub } from "../failure.ts";
import { pgEnv } from "./pg-env.ts";

const CONNECT_TIMEOUT_SECONDS = "10";

export function toolEnv(url: string): NodeJS.ProcessEnv {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("PG")));
  return { ...inherited, PGCONNECT_TIMEOUT: CONNECT_TIMEOUT_SECONDS, PGAPPNAME: "astrid-backup", ...pgEnv(url) };
}

/** Keeps the last bytes of a child's stderr for the error message. */
export function stderrTail(child: ChildProcess, limit = 8192): () => string {
  let tail = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (d: string) => {
    tail = (tail + d).slice(-limit);
  });
  return () => tail;
}

export function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode });
    child.once("error", reject);
    child.once("close", (code, signal) => resolve({ code, signal }));
  });
}

export async function psql(url: string, sql: string): Promise<string> {
  const child = spawn("psql", ["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql], { env: toolEnv(url), stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
  const tail = stderrTail(child);
  const { code } = await exitOf(child).catch((e: Error) => {
    throw new AppError("tool_missing", `cannot run psql: ${e.message}`);
  });
  if (code !== 0) throw classifyPgError("psql", tail(), url);
  return out.trim();
}

export async function toolVersion(tool: "pg_dump" | "pg_restore"): Promise<string> {
  const child = spawn(tool, ["--version"], { stdio: ["ignore", "pipe", "ignore"] });
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
  await exitOf(child).catch((e: Error) => {
    throw new AppError("tool_missing", `cannot run ${tool}: ${e.message}`);
  });
  const match = /(\d+(\.\d+)?)/.exec(out);
  if (!match) throw new AppError("tool_missing", `${tool} --version printed nothing useful`);
  return match[1]!;
}

export function major(version: string): number {
  return Number.parseInt(version, 10);
}

const KNOWN_ERRORS: [RegExp, string][] = [
  [/server version mismatch/i, "pg_dump_too_old"],
  [/password authentication failed|no password supplied/i, "auth_failed"],
  [/role "[^"]*" does not exist/i, "role_missing"],
  [/database "[^"]*" does not exist/i, "database_missing"],
  [/terminating connection|server closed the connection|connection to server was lost|lost synchronization/i, "database_connection_lost"],
  [/could not connect|connection refused|could not translate host name|timeout expired|no route to host/i, "database_unreachable"],
  [/permission denied/i, "permission_denied"],
];

export function classifyPgError(tool: string, stderr: string, url: string): AppError {
  const code = KNOWN_ERRORS.find(([pattern]) => pattern.test(stderr))?.[1] ?? `${tool}_failed`;
  const password = safePassword(url);
  const lines = scrub(stderr, password ? [password] : []).trim().split("\n").slice(-4).join(" | ");
  return new AppError(code, `${tool}: ${lines || "exited with an error and printed nothing"}`);
}

function safePassword(url: string): string | undefined {
  try {
    return pgEnv(url).PGPASSWORD;
  } catch {
    return undefined;
  }
}
