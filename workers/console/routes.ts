// The console's two read routes: the overview (one row per protected
// source, failing first) and one source's history for the charts. The
// console itself is static files (console/, Workers Static Assets) that call
// these and the rest of the API with the operator's token.
import { Hono } from "hono";
import type { AppEnv } from "../context.ts";
import { requireRole } from "../auth.ts";
import { kindContext, parseQuery } from "../http.ts";
import { computeOverview } from "./overview.ts";
import { backupStats, StatsQuery } from "./stats.ts";

export { StatsQuery };

export const consoleRoutes = new Hono<AppEnv>();

consoleRoutes.get("/overview", requireRole("viewer"), async (c) => {
  const overview = await computeOverview(kindContext(c));
  // Who the console is signed in as: the role decides which actions it offers (the API refuses the rest anyway).
  return c.json({ signed_in: { role: c.get("role"), actor: c.get("actor") }, ...overview });
});

consoleRoutes.get("/stats/backups", requireRole("viewer"), async (c) => c.json(await backupStats(kindContext(c), parseQuery(c, StatsQuery))));
