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

// The answers, exported for the OpenAPI document too; each route builds its answer with the type of its schema.
const JOB_STATUS = z.enum(["queued", "running", "succeeded", "failed"]);
const Missing = z.array(z.strictObject({ domain: z.string(), source: z.string(), reason: z.string() }));

export const DrillAccepted = z.strictObject({
  job_id: z.string(), run_id: z.string(), status: JOB_STATUS,
  restore_points: z.strictObject({
    databases: z.array(z.strictObject({ database: z.string(), backup_id: z.string() })),
    ml: z.array(z.strictObject({ server: z.string(), backup_id: z.string() })),
    storage: z.array(z.strictObject({ bucket: z.string(), prefix: z.string(), snapshot_id: z.string() })),
    catalog: z.boolean(),
  }),
  missing: Missing,
});

export const ScenarioCatalogue = z.strictObject({
  scenarios: z.array(z.strictObject({ name: z.string(), summary: z.string(), simulation: z.string(), simulated: z.boolean(), runbook: z.string() })),
});

export const ScenarioAccepted = z.strictObject({ job_id: z.string(), run_id: z.string(), scenario: z.string(), status: JOB_STATUS, missing: Missing });

/** A drill or scenario run; results are the per-domain outcomes (workers/dr/protocol.ts DomainResult). */
export const RunView = z.strictObject({
  scenario: z.string().optional(),
  runbook: z.string().optional(),
  steps: z.array(z.strictObject({ name: z.string(), ms: z.number(), ok: z.boolean() })).optional(),
  run_id: z.string(), job_id: z.string(), kind: z.string(), trigger: z.enum(["manual", "scheduled"]), status: z.enum(["running", "passed", "failed"]),
  requested_by: z.string(), started_at: z.string(), finished_at: z.string().optional(), duration_ms: z.number().int().nullable().optional(),
  results: z.array(z.looseObject({ domain: z.string(), source: z.string(), passed: z.boolean() })).optional(),
  data_loss_seconds: z.number().int().nullable(),
  errors: z.array(z.string()),
});
export const RunList = z.strictObject({ runs: z.array(RunView) });

const Point = z.strictObject({ id: z.string(), created_at: z.string() }).nullable();

export const DrStatusResponse = z.strictObject({
  rpo_target_minutes: z.number(),
  rto_target_minutes: z.number(),
  last_drill: z.strictObject({
    run_id: z.string(), status: z.enum(["running", "passed", "failed"]), started_at: z.string(), finished_at: z.string().nullable(), data_loss_seconds: z.number().int().nullable(),
  }).nullable(),
  sources: z.array(z.strictObject({
    domain: z.string(), source: z.string(), newest_point: Point, newest_verified_point: Point,
    protection: z.enum(["continuous", "restore_points"]),
    rpo_minutes: z.number().nullable(), rpo_target_minutes: z.number(), rpo_met: z.boolean(),
    last_drill: z.strictObject({
      run_id: z.string(), at: z.string(), passed: z.boolean(), data_loss_minutes: z.number().nullable(), data_loss_met: z.boolean().nullable(),
    }).nullable(),
  })),
});

export const RtoResponse = z.strictObject({
  rto_target_minutes: z.number(),
  sources: z.array(z.strictObject({
    domain: z.string(), source: z.string(), restores_measured: z.number().int(),
    last_seconds: z.number().nullable(), last_via: z.string().nullable(), p50_seconds: z.number().nullable(), p95_seconds: z.number().nullable(),
    throughput_bytes_per_second: z.number().nullable(), newest_point_bytes: z.number().nullable(), implied_rto_minutes: z.number().nullable(),
    rto_target_minutes: z.number(), state: z.enum(["ok", "at_risk", "breached", "unknown"]),
  })),
});

export const AlertList = z.strictObject({
  alerts: z.array(z.strictObject({
    key: z.string(), kind: z.string(), source: z.string(), status: z.enum(["firing", "resolved"]), summary: z.string(),
    fired_at: z.string(), resolved_at: z.string().nullable(), updated_at: z.string(),
  })),
});

/** The routes; the registry tells the lost-job sweep which kinds are Worker-run (as for GET /jobs). */
export function drRoutes(kinds: KindRegistry) {
  const routes = new Hono<AppEnv>();

  routes.post("/backup/test-recovery", requireRole("admin"), async (c) => {
    await parseJson(c, DrillRequest);
    const { job, params } = await submitDrill(kindContext(c), { trigger: "manual", actor: c.get("actor") });
    const answer: z.infer<typeof DrillAccepted> = {
      job_id: job.id, run_id: job.id, status: job.status,
      restore_points: { databases: params.databases, ml: params.ml, storage: params.storage, catalog: params.catalog }, missing: params.missing,
    };
    return c.json(answer, 202);
  });

  routes.get("/dr/scenarios", requireRole("viewer"), (c) => {
    const answer: z.infer<typeof ScenarioCatalogue> = { scenarios: scenarioCatalogue() };
    return c.json(answer);
  });

  routes.post("/dr/scenarios/:name/simulate", requireRole("admin"), async (c) => {
    const name = c.req.param("name");
    const scenario = Object.hasOwn(SCENARIOS, name) ? SCENARIOS[name]! : undefined;
    if (!scenario) throw notFound(`scenario "${name}"`);
    // 422, not 501: the API works as documented; this scenario is one it does not simulate (the fuzz test allows no 5xx).
    if (!scenario.simulated) throw new AppError("not_implemented", `scenario ${name} is not simulated yet; its runbook section still applies`, 422);
    const body = await parseJson(c, ScenarioRequest);
    if (body.database && !(body.database in c.get("config").databases)) throw notFound(`database "${body.database}"`);
    const { job, params } = await submitDrill(kindContext(c), { trigger: "manual", actor: c.get("actor"), scope: scenario.scope(body) });
    const answer: z.infer<typeof ScenarioAccepted> = { job_id: job.id, run_id: job.id, scenario: name, status: job.status, missing: params.missing };
    return c.json(answer, 202);
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
    const answer: z.infer<typeof RunList> = { runs: (await openDrStore(c.env.CATALOG).listRuns(q)).map(runView) };
    return c.json(answer);
  });

  routes.get("/dr/runs/:id", requireRole("viewer"), async (c) => {
    await settled(c);
    const run = await openDrStore(c.env.CATALOG).getRun(c.req.param("id"));
    if (!run) throw notFound("drill run");
    const answer: z.infer<typeof RunView> = runView(run);
    return c.json(answer);
  });

  routes.get("/dr/status", requireRole("viewer"), async (c) => {
    const config = c.get("config");
    const answer: z.infer<typeof DrStatusResponse> = {
      rpo_target_minutes: config.rpo_target_minutes, rto_target_minutes: config.rto_target_minutes, ...(await computeStatus(kindContext(c))),
    };
    return c.json(answer);
  });

  routes.get("/dr/rto", requireRole("viewer"), async (c) => {
    const answer: z.infer<typeof RtoResponse> = { rto_target_minutes: c.get("config").rto_target_minutes, sources: await computeRto(kindContext(c)) };
    return c.json(answer);
  });

  routes.get("/dr/alerts", requireRole("viewer"), async (c) => {
    const { status } = parseQuery(c, AlertsQuery);
    const answer: z.infer<typeof AlertList> = { alerts: await openDrStore(c.env.CATALOG).listAlerts(status) };
    return c.json(answer);
  });

  routes.get("/metrics", requireRole("viewer"), async (c) =>
    c.body(await renderMetrics(kindContext(c)), 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }));

  return routes;
}
