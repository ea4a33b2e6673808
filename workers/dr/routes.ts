// The DR admin API: start a drill (the seed's POST /backup/test-recovery),
// list runs, status, RTO, alerts, and the Prometheus metrics.
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../context.ts";
import { requireRole } from "../auth.ts";
import { AppError, notFound } from "../shared/errors.ts";
import { kindContext, parseJson, parseQuery } from "../http.ts";
import { settleOrphanedRuns } from "./complete.ts";
import { renderMetrics } from "./metrics.ts";
import { openDrStore, runView } from "./runs.ts";
import { computeRto, computeStatus } from "./status.ts";
import { submitDrill } from "./submit.ts";
import { ScenarioRequest, SCENARIOS, scenarioCatalogue } from "./scenarios.ts";
import type { KindRegistry } from "../jobs/kind.ts";

/** The DR routes; the registry tells the lost-job sweep which kinds the Worker runs itself. */
export function drRoutes(kinds: KindRegistry) {
  const drRoutes = new Hono<AppEnv>();

  drRoutes.post("/backup/test-recovery", requireRole("admin"), async (c) => {
    await parseJson(c, z.strictObject({}));
    const { job, params } = await submitDrill(kindContext(c), { trigger: "manual", actor: c.get("actor") });
    return c.json({
      job_id: job.id, run_id: job.id, status: job.status,
      restore_points: { databases: params.databases, ml: params.ml, storage: params.storage, catalog: params.catalog }, missing: params.missing,
    }, 202);
  });

  drRoutes.get("/dr/scenarios", requireRole("viewer"), (c) => c.json({ scenarios: scenarioCatalogue() }));

  drRoutes.post("/dr/scenarios/:name/simulate", requireRole("admin"), async (c) => {
    const name = c.req.param("name");
    const scenario = Object.hasOwn(SCENARIOS, name) ? SCENARIOS[name]! : undefined;
    if (!scenario) throw notFound(`scenario "${name}"`);
    if (!scenario.simulated) throw new AppError("not_implemented", `scenario ${name} is not simulated yet; its runbook section still applies`, 501);
    const body = await parseJson(c, ScenarioRequest);
    if (body.database && !(body.database in c.get("config").databases)) throw notFound(`database "${body.database}"`);
    const scope = scenario.scope(body);
    const { job, params } = await submitDrill(kindContext(c), { trigger: "manual", actor: c.get("actor"), scope });
    return c.json({ job_id: job.id, run_id: job.id, scenario: name, status: job.status, missing: params.missing }, 202);
  });

  const RunsQuery = z.strictObject({
    kind: z.string().max(100).optional(),
    limit: z.coerce.number().int().min(1).max(200).default(20),
    before: z.string().max(40).optional(),
  });

  /** Looking settles drills whose runner was lost, as GET /jobs expires lost jobs. */
  async function settled(c: { env: AppEnv["Bindings"]; get: (k: "catalog" | "config") => any }) {
    await c.get("catalog").expireStaleJobs(new Date(), c.get("config").job_lease_seconds, kinds.workerKinds());
    await settleOrphanedRuns(c.env);
  }

  drRoutes.get("/dr/runs", requireRole("viewer"), async (c) => {
    const q = parseQuery(c, RunsQuery);
    await settled(c);
    return c.json({ runs: (await openDrStore(c.env.CATALOG).listRuns(q)).map(runView) });
  });

  drRoutes.get("/dr/runs/:id", requireRole("viewer"), async (c) => {
    await settled(c);
    const run = await openDrStore(c.env.CATALOG).getRun(c.req.param("id"));
    if (!run) throw notFound("drill run");
    return c.json(runView(run));
  });

  drRoutes.get("/dr/status", requireRole("viewer"), async (c) => {
    const config = c.get("config");
    return c.json({
      rpo_target_minutes: config.rpo_target_minutes, rto_target_minutes: config.rto_target_minutes,
      ...(await computeStatus(c.env, c.get("catalog"), config, new Date())),
    });
  });

  drRoutes.get("/dr/rto", requireRole("viewer"), async (c) => {
    const config = c.get("config");
    return c.json({ rto_target_minutes: config.rto_target_minutes, sources: await computeRto(c.env, c.get("catalog"), config) });
  });

  drRoutes.get("/dr/alerts", requireRole("viewer"), async (c) => {
    const { status } = parseQuery(c, z.strictObject({ status: z.enum(["firing", "resolved"]).optional() }));
    return c.json({ alerts: await openDrStore(c.env.CATALOG).listAlerts(status) });
  });

  drRoutes.get("/metrics", requireRole("viewer"), async (c) => {
    const body = await renderMetrics(c.env, c.get("catalog"), c.get("config"), new Date());
    return c.body(body, 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
  });

  return drRoutes;
}
