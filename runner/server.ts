// The runner: a small HTTP service that accepts jobs from the Worker and runs
// pg_dump / pg_restore next to the data. It holds no R2 credentials and no
// long-lived secrets: each job brings what it needs.
import { timingSafeEqual, createHash } from "node:crypto";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { DispatchBase } from "../workers/shared/protocol.ts";
import { runningJobs, shutdown, startJob } from "./jobs.ts";
import { handlers } from "./kinds.ts";

export function createRunnerApp(token: string) {
  const app = new Hono();
  const expected = createHash("sha256").update(token).digest();

  app.get("/health", (c) => c.json({ status: "ok", running: runningJobs().length }));

  app.post("/jobs", async (c) => {
    const presented = /^Bearer\s+(\S+)$/i.exec(c.req.header("authorization") ?? "")?.[1] ?? "";
    if (!timingSafeEqual(createHash("sha256").update(presented).digest(), expected)) {
      return c.json({ error: { code: "unauthorized", message: "invalid runner token" } }, 401);
    }
    const body: unknown = await c.req.json().catch(() => undefined);
    const base = DispatchBase.safeParse(body);
    const handler = base.success ? handlers[base.data.kind] : undefined;
    if (!handler) return c.json({ error: { code: "invalid_job", message: base.success ? `no handler for jobs of kind ${base.data.kind}` : "not a job dispatch" } }, 400);
    const parsed = handler.dispatch.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return c.json({ error: { code: "invalid_job", message: `${issue?.path.join(".")}: ${issue?.message}` } }, 400);
    }
    const outcome = startJob(parsed.data as DispatchBase);
    return c.json({ job_id: parsed.data.job_id, outcome }, 202);
  });
  return app;
}

if (import.meta.main) {
  const token = process.env.RUNNER_TOKEN;
  if (!token || token.length < 16) {
    console.error("RUNNER_TOKEN (16+ characters) must be set");
    process.exit(2);
  }
  const port = Number(process.env.PORT ?? 8788);
  const hostname = process.env.HOST ?? "127.0.0.1";
  const server = serve({ fetch: createRunnerApp(token).fetch, port, hostname }, () => console.log(`runner listening on http://${hostname}:${port}`));
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.once(signal, async () => {
      server.close();
      await shutdown(5000);
      process.exit(0);
    });
  }
}
