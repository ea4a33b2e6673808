// Exit codes, documented in docs/cli.md; scripts branch on them.
export const EXIT = {
  ok: 0,
  /** A job (or an operation such as a catalog rebuild) failed; or the API failed (5xx, unreachable). */
  failed: 1,
  /** Unknown command or option, a missing argument, or a request the API refused as invalid (400, 409, 422...). */
  usage: 2,
  /** No token, a token the API does not accept (401), or one without the role the command needs (403). */
  auth: 3,
  /** The backup, job, run or route named does not exist (404). */
  notFound: 4,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export class CliError extends Error {
  readonly exitCode: ExitCode;
  constructor(message: string, exitCode: ExitCode) {
    super(message);
    this.exitCode = exitCode;
  }
}

export class UsageError extends CliError {
  constructor(message: string) {
    super(message, EXIT.usage);
  }
}

/** An error answer of the API, {error:{code,message}}, with its HTTP status. */
export class ApiError extends CliError {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(`${code}: ${message}`, exitCodeOf(status));
    this.status = status;
    this.code = code;
  }
}

function exitCodeOf(status: number): ExitCode {
  if (status === 401 || status === 403) return EXIT.auth;
  if (status === 404) return EXIT.notFound;
  if (status >= 400 && status < 500) return EXIT.usage;
  return EXIT.failed;
}
