// The disaster-recovery capability's job kinds, both run on the runner:
//   dr.drill   a drill or scenario: the runner restores databases and ML
//              backups into scratch copies and validates them; the completion
//              (complete.ts) proves storage and the catalog in the Worker,
//              judges the whole, records the run and raises the drill alert.
//   dr.canary  DR_CANARY's timestamped row in each source database.
// The scheduled tasks are in tasks.ts.
import { runnerKind } from "../jobs/kind.ts";
import { completeDrill } from "./complete.ts";
import { buildCanaryDispatch, buildDrillDispatch } from "./dispatch.ts";
import { CanaryParams, CanaryResult, DrillParams, DrillResult } from "./protocol.ts";

export const drDrill = runnerKind({
  kind: "dr.drill", params: DrillParams, result: DrillResult,
  dispatch: buildDrillDispatch,
  complete: completeDrill,
});

export const drCanary = runnerKind({
  kind: "dr.canary", params: CanaryParams, result: CanaryResult,
  // One canary round at a time: a slow database must not pile them up.
  concurrencyKey: () => "dr.canary",
  dispatch: (_p, ctx) => buildCanaryDispatch(ctx),
});

export const drKinds = [drDrill, drCanary];
