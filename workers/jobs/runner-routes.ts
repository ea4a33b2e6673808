// What the runner reports about a job it runs, under /repo/v1 with the job's
// own token (checked by requireJobToken where /repo/v1 is mounted): progress
// (which renews the lease) and the one completion.
import { Hono } from "hono";
import { AppError } from "../shared/errors.ts";
import { JobCompletion, JobProgress } from "../shared/protocol.ts";
import { kindContext, parseJson } from "../http.ts";
import type { RepoEnv } from "../repository/routes.ts";
import { completeJob } from "./complete.ts";
import type { KindRegistry } from "./kind.ts";

export function runnerReportRoutes(kinds: KindRegistry) {
  const routes = new Hono<RepoEnv>();
  routes.post("/jobs/:id/progress", async (c) => {
    const grant = c.get("grant");
    if (grant.job_id !== c.req.param("id")) throw new AppError("forbidden", "token is for another job", 403);
    const progress = await parseJson(c, JobProgress);
    await c.get("catalog").recordProgress(grant.job_id, progress, new Date());
    return c.json({ ok: true });
  });

  routes.post("/jobs/:id/complete", async (c) => {
    const grant = c.get("grant");
    if (grant.job_id !== c.req.param("id")) throw new AppError("forbidden", "token is for another job", 403);
    const completion = await parseJson(c, JobCompletion);
    const job = await completeJob(kindContext(c), kinds, grant.job_id, completion);
    return c.json({ status: job?.status ?? "unknown" });
  });
  return routes;
}
