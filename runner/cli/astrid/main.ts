// astrid-backup <command>: argument parsing, dispatch, help and exit codes.
// Options may come before or after the command's words; each command takes
// only its own options (and the global ones), so a typo is an error (exit 2),
// never silently ignored.
import { parseArgs, type ParseArgsConfig } from "node:util";
import { COMMANDS } from "./commands/index.ts";
import { loadConnection } from "./config.ts";
import type { Command, Context } from "./context.ts";
import { CliError, EXIT, type ExitCode, UsageError } from "./errors.ts";
import { apiClient } from "./http.ts";

const GLOBAL_OPTIONS = {
  json: { type: "boolean" },
  url: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies NonNullable<ParseArgsConfig["options"]>;

export interface Io {
  env: NodeJS.ProcessEnv;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** stderr is a terminal (the live progress bar), and the raw writer for it. */
  tty: boolean;
  drawLine: (text: string) => void;
}

function helpText(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    "usage: astrid-backup <command> [options] [--json] [--url <api-url>]",
    "",
    "commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "The API and token come from ASTRID_API_URL and ASTRID_TOKEN, or ~/.config/astrid-backup/config.json",
    '({"url": ..., "token": ...}, mode 0600). --json prints one JSON document on stdout. Commands that start a',
    "job take --wait: follow it to its end, with a progress bar on a terminal.",
    "exit codes: 0 ok, 1 a job failed (or the API did), 2 bad usage, 3 auth, 4 not found. See docs/cli.md.",
  ].join("\n");
}

const usageOf = (c: Command) => `usage: astrid-backup ${c.name}${c.usage ? ` ${c.usage}` : ""} [--json]`;

/** The command named by the leading words, longest name first ("backups list" before a one-word "backups"). */
function findCommand(words: string[]): { command: Command; rest: string[] } | undefined {
  for (const n of [2, 1]) {
    const name = words.slice(0, n).join(" ");
    const command = COMMANDS.find((c) => c.name === name);
    if (command && words.length >= n) return { command, rest: words.slice(n) };
  }
  return undefined;
}

export async function main(argv: string[], io: Io): Promise<ExitCode> {
  let json = false;
  try {
    // First pass: every option any command knows, loosely, to find the command's words.
    const everyOption = Object.assign({}, GLOBAL_OPTIONS, ...COMMANDS.map((c) => c.options ?? {}));
    const loose = parseArgs({ args: argv, options: everyOption, strict: false, allowPositionals: true });
    json = loose.values.json === true;
    const words = loose.positionals;
    if (words.length === 0 || words[0] === "help") {
      const wanted = words.length > 1 ? findCommand(words.slice(1)) : undefined;
      io.stdout(wanted ? `${usageOf(wanted.command)}\n\n${wanted.command.summary}` : helpText());
      return words.length === 0 && !loose.values.help ? EXIT.usage : EXIT.ok;
    }
    const found = findCommand(words);
    if (!found) {
      const group = COMMANDS.filter((c) => c.name.startsWith(`${words[0]} `)).map((c) => c.name);
      if (group.length && loose.values.help) {
        io.stdout(COMMANDS.filter((c) => group.includes(c.name)).map((c) => `${usageOf(c)}\n  ${c.summary}`).join("\n"));
        return EXIT.ok;
      }
      throw new UsageError(group.length ? `"${words[0]}" needs one of: ${group.join(", ")}` : `unknown command "${words[0]}"; astrid-backup help lists them`);
    }
    const { command } = found;
    let parsed;
    try {
      parsed = parseArgs({ args: argv, options: { ...GLOBAL_OPTIONS, ...command.options }, strict: true, allowPositionals: true });
    } catch (e) {
      throw new UsageError(`${(e as Error).message.replace(/\. To specify a positional.*$/s, "")}\n${usageOf(command)}`);
    }
    if (parsed.values.help) {
      io.stdout(`${usageOf(command)}\n\n${command.summary}`);
      return EXIT.ok;
    }
    const positionals = parsed.positionals.slice(command.name.split(" ").length);
    const { min, max } = command.positionals ?? { min: 0, max: 0 };
    if (positionals.length < min || positionals.length > max) {
      throw new UsageError(`${positionals.length < min ? "missing arguments" : `unexpected argument "${positionals[max]}"`}\n${usageOf(command)}`);
    }
    const connection = loadConnection(io.env, { url: parsed.values.url });
    const ctx: Context = {
      api: apiClient(connection),
      json,
      out: io.stdout,
      note: io.stderr,
      tty: io.tty && !io.env.CI,
      draw: io.drawLine,
      now: () => Date.now(),
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
      pollMs: Number(io.env.ASTRID_POLL_MS) > 0 ? Number(io.env.ASTRID_POLL_MS) : 1000,
    };
    const code = await command.run(ctx, { positionals, values: parsed.values });
    return typeof code === "number" ? code : EXIT.ok;
  } catch (e) {
    if (e instanceof CliError) {
      // --json: the error as the API's shape on stdout too, so a script reads one document either way.
      if (json) io.stdout(JSON.stringify({ error: { code: "code" in e ? String(e.code) : codeOf(e.exitCode), message: e.message } }, null, 2));
      io.stderr(`astrid-backup: ${e.message}`);
      return e.exitCode;
    }
    io.stderr(`astrid-backup: unexpected error: ${(e as Error).stack ?? String(e)}`);
    return EXIT.failed;
  }
}

const codeOf = (exit: ExitCode) => ({ 0: "ok", 1: "failed", 2: "usage", 3: "auth", 4: "not_found" } as const)[exit];
