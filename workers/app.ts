// The Worker's HTTP surface: the admin API and the runner's repository
// endpoint. This is where the capabilities' routes are composed; the
// registry (kinds.ts) is handed to the routes that need it.
import { Hono } from "hono";
import type { z } from "zod";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "./context.ts";
import { openCatalog } from "./catalog/catalog.ts";
import { ConfigError, loadConfig } from "./config.ts";
import { backupItemRoutes, databaseRoutes, restoreDatabaseBackup } from "./database/routes.ts";
import { databaseStatusRoutes } from "./database/status.ts";
import { continuousRoutes, continuousStatus } from "./continuous/routes.ts";
import { continuousRunnerRoutes, segmentWriteFence } from "./continuous/runner-routes.ts";
import { AppError } from "./shared/errors.ts";
import { presentedRole } from "./auth.ts";
import { jobRoutes } from "./jobs/routes.ts";
import { runnerReportRoutes } from "./jobs/runner-routes.ts";
import { kinds } from "./kinds.ts";
import { catalogRoutes } from "./maintenance/catalog-rebuild.ts";
import { gcRoutes } from "./maintenance/gc-routes.ts";
import { mlRoutes, restoreMlBackup, restoreTrainingDataSnapshot } from "./ml/routes.ts";
import { sourceRoutes } from "./ml/source-routes.ts";
import { repositoryRoutes, requireJobToken, type RepoEnv } from "./repository/routes.ts";
import { storageRoutes } from "./storage/routes.ts";
import { storageOpsRoutes } from "./storage/ops-routes.ts";
import { backupBucketLocks } from "./storage/lock-guard.ts";
import { drRoutes } from "./dr/routes.ts";
import { HealthResponse, openApiRoutes } from "./api/openapi.ts";
import { consoleRoutes } from "./console/routes.ts";

export const app = new Hono<AppEnv>();

const context = createMiddleware<AppEnv>(async (c, next) => {
  c.set("config", loadConfig(c.env));
  c.set("catalog", openCatalog(c.env.CATALOG));
  await next();
});

app.get("/health", async (c) => {
  try {
    loadConfig(c.env);
    await c.env.CATALOG.prepare("SELECT 1").first();
    return c.json({ status: "ok" } satisfies z.infer<typeof HealthResponse>);
  } catch (e) {
    // /health answers anyone: codes only, no text that might echo a configured value.
    const code = e instanceof ConfigError ? "config_invalid" : "catalog_unavailable";
    return c.json({ status: "unhealthy", error: { code, message: code === "config_invalid" ? "the configuration is invalid" : "the catalog is unreachable" } }, 503);
  }
});

// A malformed percent escape anywhere in the path is the caller's mistake (400), not a key to look up or a 500.
app.use("*", async (c, next) => {
  try {
    decodeURIComponent(new URL(c.req.url).pathname);
  } catch {
    throw new AppError("invalid_path", "the path has a malformed percent escape", 400);
  }
  await next();
});
app.use("*", context);
app.route("/", databaseStatusRoutes(continuousStatus));
app.route("/", continuousRoutes);
app.route("/", databaseRoutes);
app.route("/", backupItemRoutes(kinds, { database: restoreDatabaseBackup, ml: restoreMlBackup, training_data: restoreTrainingDataSnapshot }));
app.route("/", mlRoutes);
app.route("/", jobRoutes(kinds));
app.route("/", gcRoutes);
app.route("/", catalogRoutes);
app.route("/", storageRoutes);
app.route("/", storageOpsRoutes);

app.route("/", drRoutes(kinds));
app.route("/", openApiRoutes);
app.route("/", consoleRoutes);

// The runner's side: every request carries a job token naming a running job.
const runnerSide = new Hono<RepoEnv>();
runnerSide.use("*", requireJobToken);
runnerSide.route("/", repositoryRoutes(backupBucketLocks, segmentWriteFence));
runnerSide.route("/", sourceRoutes);
runnerSide.route("/", runnerReportRoutes(kinds));
runnerSide.route("/", continuousRunnerRoutes(kinds));
app.route("/repo/v1", runnerSide);

app.notFound((c) => c.json({ error: { code: "not_found", message: `no route for ${c.req.method} ${c.req.path}` } }, 404));

app.onError(async (err, c) => {
  if (err instanceof ConfigError) {
    // The config loads before auth: only a caller with a valid token sees what is wrong (it may echo values).
    const known = c.get("role") ?? (await presentedRole(c.env, c.req.header("authorization")));
    return c.json({ error: { code: "config_invalid", message: known ? err.message : "the configuration is invalid" } }, 500);
  }
  if (err instanceof AppError) {
    return c.json({ error: { code: err.code, message: err.message } }, (err.status ?? 500) as 500);
  }
  console.error(`unhandled error on ${c.req.method} ${c.req.path}: ${err.name}`); // message may echo input; keep logs clean
  return c.json({ error: { code: "internal", message: "internal error" } }, 500);
});
