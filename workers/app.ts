// The Worker's HTTP surface: the admin API and the runner's repository endpoint.
import { Hono } from "hono";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "./app-env.ts";
import { openCatalog } from "./catalog/catalog.ts";
import { catalogRoutes } from "./catalog/rebuild.ts";
import { ConfigError, loadConfig } from "./config.ts";
import { databaseRoutes } from "./database/routes.ts";
import { statusRoutes } from "./database/status.ts";
import { ApiError } from "./errors.ts";
import { jobRoutes } from "./jobs/routes.ts";
import { mlRoutes } from "./ml/routes.ts";
import { gcRoutes } from "./repository/gc-routes.ts";
import { repositoryRoutes } from "./repository/routes.ts";
import { storageRoutes } from "./storage/routes.ts";
import { storageOpsRoutes } from "./storage/ops-routes.ts";
import { drRoutes } from "./dr/routes.ts";

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
    return c.json({ status: "ok" });
  } catch (e) {
    const code = e instanceof ConfigError ? "config_invalid" : "catalog_unavailable";
    return c.json({ status: "unhealthy", error: { code, message: (e as Error).message } }, 503);
  }
});

app.use("*", context);
app.route("/", statusRoutes);
app.route("/", databaseRoutes);
app.route("/", mlRoutes);
app.route("/", jobRoutes);
app.route("/", gcRoutes);
app.route("/", catalogRoutes);
app.route("/", storageRoutes);
app.route("/", storageOpsRoutes);
app.route("/", drRoutes);
app.route("/repo/v1", repositoryRoutes);

app.notFound((c) => c.json({ error: { code: "not_found", message: `no route for ${c.req.method} ${c.req.path}` } }, 404));

app.onError((err, c) => {
  if (err instanceof ApiError) return c.json({ error: { code: err.code, message: err.message } }, err.status);
  if (err instanceof ConfigError) return c.json({ error: { code: "config_invalid", message: err.message } }, 500);
  console.error(`unhandled error on ${c.req.method} ${c.req.path}: ${err.name}`); // message may echo input; keep logs clean
  return c.json({ error: { code: "internal", message: "internal error" } }, 500);
});
