// Request parsing and response shapes shared by the route modules.
import type { Context } from "hono";
import type { z } from "zod";
import { AppError, badRequest } from "./shared/errors.ts";
import type { BackupRow, JobRow } from "./catalog/schema.ts";
import type { AppEnv, KindContext } from "./context.ts";

/** The handler context of a request, as the job kinds take it. */
export function kindContext<E extends AppEnv>(c: Context<E>): KindContext {
  return { env: c.env, config: c.get("config"), catalog: c.get("catalog"), now: new Date() };
}

/** The 202 answer for a submitted job; says so when it waits behind a running job on the same source. */
export function accepted(s: { job: JobRow; queued_behind?: string }, extra: Record<string, unknown> = {}) {
  return {
    job_id: s.job.id, status: s.job.status, ...extra,
    ...(s.queued_behind ? { queued_behind: s.queued_behind, note: `waits for job ${s.queued_behind} on the same source to end` } : {}),
  };
}

export async function parseJson<T extends z.ZodType>(c: Context, schema: T): Promise<z.infer<T>> {
  let body: unknown = {};
  const text = await c.req.text();
  if (text.trim() !== "") {
    try {
      body = JSON.parse(text);
    } catch {
      throw new AppError("invalid_json", "the request body is not valid JSON", 400);
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
    ...(job.status === "queued" && job.queued_reason ? { queued_reason: job.queued_reason } : {}),
    created_at: job.created_at,
    ...(job.started_at ? { started_at: job.started_at } : {}),
    ...(job.finished_at ? { finished_at: job.finished_at } : {}),
  };
}

export function backupView(b: BackupRow) {
  return {
    backup_id: b.id,
    domain: b.domain,
    source: b.source,
    // The name of the field before sources other than databases were backed up; kept for scripts.
    database: b.source,
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
