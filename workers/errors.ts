import type { ContentfulStatusCode } from "hono/utils/http-status";

/** An error with an HTTP status and a stable code; rendered as {error:{code,message}}. */
export class ApiError extends Error {
  readonly status: ContentfulStatusCode;
  readonly code: string;
  constructor(status: ContentfulStatusCode, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const notFound = (what: string) => new ApiError(404, "not_found", `${what} not found`);
export const badRequest = (message: string) => new ApiError(400, "invalid_request", message);
export const conflict = (message: string) => new ApiError(409, "conflict", message);
