// The astrid-backup control-plane Worker: admin API (fetch), cron triggers
// (scheduled) and the job queue consumer (queue).
import { app } from "./app.ts";
import type { Env } from "./env.ts";
import { consumeJobs } from "./jobs/consumer.ts";
import { runSchedule } from "./jobs/schedule.ts";
import { kinds } from "./kinds.ts";
import { loadConfig } from "./config.ts";
import { consumeStorageEvents, STORAGE_EVENTS_QUEUE } from "./storage/capture.ts";

export { RunnerContainer } from "./runner-container.ts";

/**
 * The public entry point. With the runner as a Container (RUNNER bound), the
 * repository endpoint is reached only through the container's outbound
 * interception (RunnerContainer.outboundByHost calls the app directly), so on
 * the public hostname /repo/v1 does not exist: a leaked job token is useless
 * from the internet. Locally (RUNNER_URL) the runner is a plain process and
 * reaches it over loopback, as before.
 */
function publicFetch(req: Request, env: Env, ctx: ExecutionContext): Response | Promise<Response> {
  if (env.RUNNER && new URL(req.url).pathname.startsWith("/repo/")) {
    return Response.json({ error: { code: "not_found", message: "no such route" } }, { status: 404 });
  }
  return app.fetch(req, env, ctx);
}

export default {
  fetch: publicFetch,
  async scheduled(controller, env, ctx) {
    ctx.waitUntil(runSchedule(controller.cron, env, kinds, new Date(controller.scheduledTime)));
  },
  async queue(batch, env) {
    if (batch.queue.startsWith(STORAGE_EVENTS_QUEUE)) await consumeStorageEvents(batch, env, loadConfig(env));
    else await consumeJobs(batch, env, kinds);
  },
} satisfies ExportedHandler<Env>;
