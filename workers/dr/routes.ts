// The DR admin API: start a drill (the seed's POST /backup/test-recovery),
// list runs, status, RTO, alerts, and the Prometheus metrics.
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../context.ts";
import { requireRole } from "../auth.ts";
import { AppError, notFound } from "../shared/errors.ts";
import { kindContext, parseJson, parseQuery } from "../http.ts";
import type { KindRegistry } from "../jobs/kind.ts";
import { settleOrphanedRuns } from "./complete.ts";
import { renderMetrics } from "./metrics.ts";
import { openDrStore, runView } from "./runs.ts";
import { computeRto, computeStatus } from "./status.ts";
import { submitDrill } from "./submit.ts";
import { ScenarioRequest, SCENARIOS, scenarioCatalogue } from "./scenarios.ts";

// The request schemas, exported for the OpenAPI document (api/openapi.ts).
export const DrillRequest = z.strictObject({});
export const RunsQuery = z.strictObject({
  kind: z.string().max(100).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(20),
  before: z.string().max(40).optional(),
});
export const AlertsQuery = z.strictObject({ status: z.enum(["firing", "resolved"]).optional() });

/** The routes; the registry tells the lost-job sweep which kinds are Worker-run (as for GET /jobs). */
export function drRoutes(kinds: KindRegistry) {
  const routes = new Hono<AppEnv>();

  routes.post("/backup/test-recovery", requireRole("admin"), async (c) => {
    await parseJson(c, DrillRequest);
    const { job, params } = await submitDrill(kindContext(c), { trigger: "manual", actor: c.get("actor") });
    return c.json({
      job_id: job.id, run_id: job.id, status: job.status,
      restore_points: { databases: params.databases, ml: params.ml, storage: params.storage, catalog: params.catalog }, missing: params.missing,
    }, 202);
  });

  routes.get("/dr/scenarios", requireRole("viewer"), (c) => c.json({ scenarios: scenarioCatalogue() }));

  routes.post("/dr/scenarios/:name/simulate", requireRole("admin"), async (c) => {
    const name = c.req.param("name");
    const scenario = Object.hasOwn(SCENARIOS, name) ? SCENARIOS[name]! : undefined;
    if (!scenario) throw notFound(`scenario "${name}"`);
    if (!scenario.simulated) throw new AppError("not_implemented", `scenario ${name} is not simulated yet; its runbook section still applies`, 501);
    const body = await parseJson(c, ScenarioRequest);
    if (body.database && !(body.database in c.get("config").databases)) throw notFound(`database "${body.database}"`);
    const { job, params } = await submitDrill(kindContext(c), { trigger: "manual", actor: c.get("actor"), scope: scenario.scope(body) });
    return c.json({ job_id: job.id, run_id: job.id, scenario: name, status: job.status, missing: params.missing }, 202);
  });

  /** Looking settles drills whose runner was lost, as GET /jobs expires lost jobs. */
  const settled = async (c: Parameters<typeof kindContext>[0]) => {
    const ctx = kindContext(c);
    await ctx.catalog.expireStaleJobs(ctx.now, ctx.config.job_lease_seconds, kinds.workerKinds());
    await settleOrphanedRuns(ctx);
  };

  routes.get("/dr/runs", requireRole("viewer"), async (c) => {
    const q = parseQuery(c, RunsQuery);
    await settled(c);
    return c.json({ runs: (await openDrStore(c.env.CATALOG).listRuns(q)).map(runView) });
  });

  routes.get("/dr/runs/:id", requireRole("viewer"), async (c) => {
    await settled(c);
    const run = await openDrStore(c.env.CATALOG).getRun(c.req.param("id"));
    if (!run) throw notFound("drill run");
    return c.json(runView(run));
  });

  routes.get("/dr/status", requireRole("viewer"), async (c) => {
    const config = c.get("config");
    return c.json({ rpo_target_minutes: config.rpo_target_minutes, rto_target_minutes: config.rto_target_minutes, ...(await computeStatus(kindContext(c))) });
  });

  routes.get("/dr/rto", requireRole("viewer"), async (c) =>
    c.json({ rto_target_minutes: c.get("config").rto_target_minutes, sources: await computeRto(kindContext(c)) }));

  routes.get("/dr/alerts", requireRole("viewer"), async (c) => {
    const { status } = parseQuery(c, AlertsQuery);
    return c.json({ alerts: await openDrStore(c.env.CATALOG).listAlerts(status) });
  });

  routes.get("/metrics", requireRole("viewer"), async (c) =>
    c.body(await renderMetrics(kindContext(c)), 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }));

  return routes;
}
