// The one error type of both sides: a stable code for programs, a message for
// people, and (when it answers a request) the HTTP status. The wire shape is
// always {error:{code,message}}. Routes, Worker-run steps, dispatch, the
// runner's jobs and its repository client all throw this.
export class AppError extends Error {
  override name = "AppError";
  readonly code: string;
  /** The HTTP status when this error answers a request; absent for job failures. */
  readonly status: number | undefined;
  constructor(code: string, message: string, status?: number) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

export const notFound = (what: string) => new AppError("not_found", `${what} not found`, 404);
export const badRequest = (message: string) => new AppError("invalid_request", message, 400);
export const conflict = (message: string) => new AppError("conflict", message, 409);
