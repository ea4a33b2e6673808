// Jobs and the audit log, for operators: status, progress, result or error.
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../context.ts";
import { requireRole } from "../auth.ts";
import { notFound } from "../shared/errors.ts";
import { JobView, jobView, parseQuery } from "../http.ts";
import { JOB_STATUSES, JobKindName } from "../shared/protocol.ts";
import type { KindRegistry } from "./kind.ts";

/** GET /jobs's query (the API description uses it too); the route also checks the kind is a registered one. */
export const JobListQuery = z.strictObject({
  status: z.enum(JOB_STATUSES).optional(),
  kind: JobKindName.optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});

export const AuditQuery = z.strictObject({ limit: z.coerce.number().int().min(1).max(500).default(100) });

/** GET /jobs's answer, newest first. */
export const JobListResponse = z.strictObject({ jobs: z.array(JobView) });

/** GET /audit's answer: audit lines, newest first; detail is the JSON text the action recorded. */
export const AuditResponse = z.strictObject({
  entries: z.array(z.strictObject({
    id: z.number().int(), at: z.string(), actor: z.string(), action: z.string(), target: z.string().nullable(), outcome: z.string(), detail: z.string().nullable(),
  })),
});

export function jobRoutes(kinds: KindRegistry) {
  const routes = new Hono<AppEnv>();
  const RegisteredJobListQuery = JobListQuery.extend({
    kind: JobKindName.refine((k) => kinds.get(k) !== undefined, "not a job kind").optional(),
  });

  /** Sweeping when someone looks means a lost runner shows up at once, not only at the next cron. */
  const sweep = (c: { get(k: "catalog"): AppEnv["Variables"]["catalog"]; get(k: "config"): AppEnv["Variables"]["config"] }) =>
    c.get("catalog").expireStaleJobs(new Date(), c.get("config").job_lease_seconds, kinds.workerKinds());

  routes.get("/jobs", requireRole("viewer"), async (c) => {
    const q = parseQuery(c, RegisteredJobListQuery);
    await sweep(c);
    const answer: z.infer<typeof JobListResponse> = { jobs: (await c.get("catalog").listJobs(q)).map(jobView) };
    return c.json(answer);
  });

  routes.get("/jobs/:id", requireRole("viewer"), async (c) => {
    await sweep(c);
    const job = await c.get("catalog").getJob(c.req.param("id"));
    if (!job) throw notFound("job");
    return c.json(jobView(job));
  });

  routes.get("/audit", requireRole("admin"), async (c) => {
    const { limit } = parseQuery(c, AuditQuery);
    const answer: z.infer<typeof AuditResponse> = { entries: await c.get("catalog").listAudit(limit) };
    return c.json(answer);
  });
  return routes;
}
