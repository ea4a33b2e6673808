// The disaster-recovery capability's job kinds: a drill (or a scenario, a
// narrowed drill) that restores every enabled domain into scratch targets on
// the runner and is judged by the Worker, and the canary that writes a
// timestamped row into each source database.
import { runnerKind } from "../jobs/kind.ts";
import { ageIdentities } from "../jobs/dispatch.ts";
import { settle } from "../jobs/complete.ts";
import { completeDrill } from "./complete.ts";
import { buildCanaryDispatch, buildDrillDispatch } from "./dispatch.ts";
import { CanaryResult, DrillParams, DrillResult } from "./protocol.ts";
import { z } from "zod";

export const drDrill = runnerKind({
  kind: "dr.drill", params: DrillParams, result: DrillResult,
  // One drill at a time: two would race for the same scratch targets and sweep each other's databases.
  concurrencyKey: () => "dr.drill",
  async dispatch(p, ctx) {
    return buildDrillDispatch(ctx.job, p, ctx, { repository: await ctx.repository("read", "-"), identities: ageIdentities(ctx.env) });
  },
  complete: completeDrill,
});

export const drCanary = runnerKind({
  kind: "dr.canary", params: z.object({}), result: CanaryResult, concurrencyKey: () => "dr.canary",
  async dispatch(_p, ctx) {
    return buildCanaryDispatch(ctx.job, ctx, await ctx.repository("read", "-"));
  },
  complete: settle,
});

export const drKinds = [drDrill, drCanary];
