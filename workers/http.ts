// Request parsing and response shapes shared by the route modules.
import type { Context } from "hono";
import { z } from "zod";
import { AppError, badRequest } from "./shared/errors.ts";
import type { BackupRow, JobRow } from "./catalog/schema.ts";
import type { AppEnv, KindContext } from "./context.ts";
import { JOB_STATUSES, JobProgress } from "./shared/protocol.ts";

/** The handler context of a request, as the job kinds take it. */
export function kindContext<E extends AppEnv>(c: Context<E>): KindContext {
  return { env: c.env, config: c.get("config"), catalog: c.get("catalog"), now: new Date() };
}

/** The 202 answer for a submitted job (routes may add fields, e.g. BackupAccepted's backup_id); the OpenAPI document describes it with this. */
export const AcceptedResponse = z.looseObject({
  job_id: z.string().min(1),
  status: z.enum(JOB_STATUSES),
  queued_behind: z.string().optional(),
  note: z.string().optional(),
});

/** The 202 answer for a submitted job; says so when it waits behind a running job on the same source. */
export function accepted(s: { job: JobRow; queued_behind?: string }): z.infer<typeof AcceptedResponse> {
  return {
    job_id: s.job.id, status: s.job.status,
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

/** A job as GET /jobs and GET /jobs/:id show it; the OpenAPI document describes it with this. */
export const JobView = z.strictObject({
  id: z.string(),
  kind: z.string(),
  status: z.enum(JOB_STATUSES),
  attempts: z.number().int(),
  backup_id: z.string().optional(),
  result: z.unknown().optional(),
  error: z.strictObject({ code: z.string(), message: z.string() }).optional(),
  /** The runner's (or the Worker's step's) last report: phase, bytes and chunks so far. */
  progress: z.strictObject(JobProgress.shape).optional(),
  queued_reason: z.string().optional(),
  created_at: z.string(),
  started_at: z.string().optional(),
  finished_at: z.string().optional(),
});

export function jobView(job: JobRow): z.infer<typeof JobView> {
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

/** A backup as the listings and GET /backups/:id show it; the OpenAPI document describes it with this. */
export const BackupView = z.strictObject({
  backup_id: z.string(),
  domain: z.enum(["database", "ml", "training_data"]),
  source: z.string(),
  database: z.string(),
  type: z.enum(["full", "incremental", "archive"]),
  status: z.enum(["completed", "corrupt"]),
  logical_bytes: z.number().int(),
  stored_bytes: z.number().int(),
  new_stored_bytes: z.number().int(),
  chunk_count: z.number().int(),
  created_at: z.string(),
  finished_at: z.string(),
  duration_ms: z.number().int(),
  verified_at: z.string().optional(),
  verify_depth: z.string().nullable().optional(),
  verify_status: z.enum(["passed", "failed"]).nullable().optional(),
  verify_detail: z.string().optional(),
  last_restore_ms: z.number().int().optional(),
});

/** The 202 answer of a job that makes a backup: its id is known at once. */
export const BackupAccepted = AcceptedResponse.extend({ backup_id: z.string() });

export function backupView(b: BackupRow): z.infer<typeof BackupView> {
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
