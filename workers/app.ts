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
import { presentedRole } from "./auth.ts";
import { jobRoutes } from "./jobs/routes.ts";
import { mlRoutes } from "./ml/routes.ts";
import { gcRoutes } from "./repository/gc-routes.ts";
import { repositoryRoutes } from "./repository/routes.ts";
import { storageRoutes } from "./storage/routes.ts";
import { storageOpsRoutes } from "./storage/ops-routes.ts";

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
    throw new ApiError(400, "invalid_path", "the path has a malformed percent escape");
  }
  await next();
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
app.route("/repo/v1", repositoryRoutes);

app.notFound((c) => c.json({ error: { code: "not_found", message: `no route for ${c.req.method} ${c.req.path}` } }, 404));

app.onError(async (err, c) => {
  if (err instanceof ApiError) return c.json({ error: { code: err.code, message: err.message } }, err.status);
  if (err instanceof ConfigError) {
    // The config loads before auth: only a caller with a valid token sees what is wrong (it may echo values).
    const known = c.get("role") ?? (await presentedRole(c.env, c.req.header("authorization")));
    return c.json({ error: { code: "config_invalid", message: known ? err.message : "the configuration is invalid" } }, 500);
  }
  console.error(`unhandled error on ${c.req.method} ${c.req.path}: ${err.name}`); // message may echo input; keep logs clean
  return c.json({ error: { code: "internal", message: "internal error" } }, 500);
});
