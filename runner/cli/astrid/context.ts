// What every command gets: the API client, where to write, whether to print
// JSON, the clock (so waiting and rates can be driven by tests).
import type { ParseArgsConfig } from "node:util";
import type { ExitCode } from "./errors.ts";
import type { Answer, ApiClient } from "./http.ts";

export interface Context {
  api: ApiClient;
  /** --json: stdout carries exactly one JSON document; notes and progress go to stderr. */
  json: boolean;
  /** stdout: the command's answer. */
  out(text: string): void;
  /** stderr: notes, progress, errors. */
  note(text: string): void;
  /** stderr is a terminal: draw the live progress bar. */
  tty: boolean;
  /** Redraws the one live line on stderr (a terminal only); "" clears it. */
  draw(line: string): void;
  now(): number;
  sleep(ms: number): Promise<void>;
  pollMs: number;
}

export type OptionValues = Record<string, string | boolean | string[] | undefined>;

export interface Command {
  /** One or two words: "status", "backups list". */
  name: string;
  summary: string;
  /** The arguments after the name, as shown in help: "<backup-id> --target <db|url> [--replace] [--wait]". */
  usage: string;
  options?: NonNullable<ParseArgsConfig["options"]>;
  /** How many positional arguments the command takes (after its name). */
  positionals?: { min: number; max: number };
  run(ctx: Context, args: { positionals: string[]; values: OptionValues }): Promise<ExitCode | void>;
}

export type JobView = Answer<"/jobs/{id}", "get">;

export function printJson(ctx: Context, value: unknown): void {
  ctx.out(JSON.stringify(value, null, 2));
}

/** The options of every command that starts a job. */
export const WAIT_OPTION = { wait: { type: "boolean", short: "w" } } as const;
