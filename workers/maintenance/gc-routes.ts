// POST /repository/gc: garbage collection of chunks that no manifest
// references any more (retention deletes manifests, never chunks). It runs on
// the runner as an exclusive job; see catalog.claimJob.
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../context.ts";
import { requireRole } from "../auth.ts";
import { accepted, AcceptedResponse, kindContext, parseJson } from "../http.ts";
import { repositoryGc } from "./kinds.ts";
import { submitJob } from "../jobs/submit.ts";

export const gcRoutes = new Hono<AppEnv>();

export const GcRequest = z.strictObject({
  grace_minutes: z.number().int().min(0).max(60 * 24 * 30).optional(),
  dry_run: z.boolean().default(false),
});

gcRoutes.post("/repository/gc", requireRole("admin"), async (c) => {
  const body = await parseJson(c, GcRequest);
  const params = { grace_minutes: body.grace_minutes ?? c.get("config").gc_grace_minutes, dry_run: body.dry_run };
  const answer: z.infer<typeof AcceptedResponse> = accepted(await submitJob(kindContext(c), repositoryGc, params, { actor: c.get("actor"), target: "repository" }));
  return c.json(answer, 202);
});
