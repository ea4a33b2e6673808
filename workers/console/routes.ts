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
import { OverviewResponse, StatsResponse } from "./views.ts";
import type { z } from "zod";

export { OverviewResponse, StatsQuery, StatsResponse };

export const consoleRoutes = new Hono<AppEnv>();

consoleRoutes.get("/overview", requireRole("viewer"), async (c) => {
  const overview = await computeOverview(kindContext(c));
  // Who the console is signed in as: the role decides which actions it offers (the API refuses the rest anyway).
  const answer: z.infer<typeof OverviewResponse> = { signed_in: { role: c.get("role"), actor: c.get("actor") }, ...overview };
  return c.json(answer);
});

consoleRoutes.get("/stats/backups", requireRole("viewer"), async (c) => {
  const answer: z.infer<typeof StatsResponse> = await backupStats(kindContext(c), parseQuery(c, StatsQuery));
  return c.json(answer);
});
