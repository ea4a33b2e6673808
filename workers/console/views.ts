// What the console's two read routes answer, as zod schemas: the OpenAPI
// document describes them, the CLI's types come from it, and the routes build
// their answers with these types, so the three cannot drift.
import { z } from "zod";
import { DrStatusResponse } from "../dr/routes.ts";
import { DOMAINS } from "./domains.ts";

/** Listed failing first: the overview orders its rows by this. */
export const Health = z.enum(["red", "amber", "green"]);

export const OverviewRow = z.strictObject({
  domain: z.enum(DOMAINS),
  source: z.string(),
  health: Health,
  /** Why the row is not green, a line each. */
  reasons: z.array(z.string()),
  newest_point: z.strictObject({ id: z.string(), type: z.string(), created_at: z.string(), age_minutes: z.number() }).nullable(),
  rpo_minutes: z.number().nullable(),
  rpo_target_minutes: z.number(),
  rpo_state: z.enum(["ok", "at_risk", "breached", "unknown"]),
  last_verify: z.strictObject({ backup_id: z.string(), at: z.string(), depth: z.string().nullable(), status: z.string().nullable() }).nullable(),
  last_drill: z.strictObject({ run_id: z.string(), at: z.string(), passed: z.boolean(), data_loss_minutes: z.number().nullable() }).nullable(),
  rto: z.strictObject({ implied_minutes: z.number().nullable(), target_minutes: z.number(), state: z.string(), restores_measured: z.number().int() }),
  /** Continuous protection: a bucket's replica or versioning, or a database's continuous archive (seconds_behind: its RPO). */
  continuous: z.strictObject({ kind: z.enum(["replica", "versioning", "archive"]), replica: z.string().nullable(), seconds_behind: z.number().nullable() }).nullable(),
  next_run: z.strictObject({ at: z.string(), schedule: z.string() }).nullable(),
});
export type OverviewRow = z.infer<typeof OverviewRow>;

export const Overview = z.strictObject({
  generated_at: z.string(),
  rpo_target_minutes: z.number(),
  rto_target_minutes: z.number(),
  last_drill: DrStatusResponse.shape.last_drill,
  next_drill_at: z.string().nullable(),
  sources: z.array(OverviewRow),
});

export const OverviewResponse = Overview.extend({
  /** Who the console is signed in as: the role decides which actions it offers (the API refuses the rest anyway). */
  signed_in: z.strictObject({ role: z.enum(["viewer", "admin"]), actor: z.string() }),
});

export const StatsResponse = z.strictObject({
  domain: z.enum(DOMAINS),
  source: z.string(),
  days: z.number().int(),
  since: z.string(),
  rpo_target_minutes: z.number(),
  backups: z.array(z.strictObject({
    id: z.string(), type: z.string(), created_at: z.string(), finished_at: z.string(), duration_ms: z.number(),
    logical_bytes: z.number(), stored_bytes: z.number().nullable(), new_bytes: z.number(),
  })),
  restores: z.array(z.strictObject({
    job_id: z.string(), backup_id: z.string(), finished_at: z.string(), duration_ms: z.number(), bytes: z.number().nullable(),
  })),
  rpo: z.array(z.strictObject({ at: z.string(), minutes: z.number() })),
  replica: z.string().nullable(),
  replication_lag: z.array(z.strictObject({ at: z.string(), seconds: z.number() })),
});
