// Request parsing and response shapes shared by the route modules.
import type { Context } from "hono";
import type { z } from "zod";
import { ApiError, badRequest } from "./errors.ts";
import type { BackupRow, JobRow } from "./catalog/schema.ts";

export async function parseJson<T extends z.ZodType>(c: Context, schema: T): Promise<z.infer<T>> {
  let body: unknown = {};
  const text = await c.req.text();
  if (text.trim() !== "") {
    try {
      body = JSON.parse(text);
    } catch {
      throw new ApiError(400, "invalid_json", "the request body is not valid JSON");
    }
  }
  return check(schema, body);
}

export function parseQuery<T extends z.ZodType>(c: Context, schema: T): z.infer<T> {
  return check(schema, c.req.query());
}

function check<T extends z.ZodType>(schema: T, value: unknown): z.infer<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const where = issue.path.length ? `${issue.path.join(".")}: ` : "";
  throw badRequest(`${where}${issue.message}`);
}

const json = (text: string | null) => (text ? JSON.parse(text) : undefined);

export function jobView(job: JobRow) {
  return {
    id: job.id,
    kind: job.kind,
    status: job.status,
    attempts: job.attempts,
    ...(job.backup_id ? { backup_id: job.backup_id } : {}),
    ...(job.result ? { result: json(job.result) } : {}),
    ...(job.error_code ? { error: { code: job.error_code, message: job.error_message ?? "" } } : {}),
    ...(job.progress ? { progress: json(job.progress) } : {}),
    created_at: job.created_at,
    ...(job.started_at ? { started_at: job.started_at } : {}),
    ...(job.finished_at ? { finished_at: job.finished_at } : {}),
  };
}

export function backupView(b: BackupRow) {
  return {
    backup_id: b.id,
    database: b.database,
    type: b.type,
    status: b.status,
    logical_bytes: b.logical_bytes,
    stored_bytes: b.stored_bytes,
    new_stored_bytes: b.new_stored_bytes,
    chunk_count: b.chunk_count,
    created_at: b.created_at,
    finished_at: b.finished_at,
    duration_ms: b.duration_ms,
    ...(b.verified_at ? { verified_at: b.verified_at, verify_depth: b.verify_depth, verify_status: b.verify_status } : {}),
    ...(b.verify_detail ? { verify_detail: b.verify_detail } : {}),
    ...(b.last_restore_ms !== null ? { last_restore_ms: b.last_restore_ms } : {}),
  };
}
