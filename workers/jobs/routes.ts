import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../app-env.ts";
import { requireRole } from "../auth.ts";
import { notFound } from "../errors.ts";
import { jobView, parseQuery } from "../http.ts";
import { JOB_STATUSES, JobKind } from "../shared/protocol.ts";

export const jobRoutes = new Hono<AppEnv>();

const JobListQuery = z.strictObject({
  status: z.enum(JOB_STATUSES).optional(),
  kind: JobKind.optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});

jobRoutes.get("/jobs", requireRole("viewer"), async (c) => {
  const q = parseQuery(c, JobListQuery);
  await c.get("catalog").expireStaleJobs(new Date(), c.get("config").job_lease_seconds);
  return c.json({ jobs: (await c.get("catalog").listJobs(q)).map(jobView) });
});

jobRoutes.get("/jobs/:id", requireRole("viewer"), async (c) => {
  const catalog = c.get("catalog");
  // Sweeping here too means a lost runner shows up as soon as someone looks, not only at the next cron.
  await catalog.expireStaleJobs(new Date(), c.get("config").job_lease_seconds);
  const job = await catalog.getJob(c.req.param("id"));
  if (!job) throw notFound("job");
  return c.json(jobView(job));
});

jobRoutes.get("/audit", requireRole("admin"), async (c) => {
  const { limit } = parseQuery(c, z.strictObject({ limit: z.coerce.number().int().min(1).max(500).default(100) }));
  return c.json({ entries: await c.get("catalog").listAudit(limit) });
});
