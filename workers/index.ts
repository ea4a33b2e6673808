// The astrid-backup control-plane Worker: admin API (fetch), cron triggers
// (scheduled) and the job queue consumer (queue).
import { app } from "./app.ts";
import type { Env } from "./env.ts";
import { consumeJobs } from "./jobs/consumer.ts";
import { runSchedule } from "./jobs/schedule.ts";

export { RunnerContainer } from "./runner-container.ts";

export default {
  fetch: app.fetch,
  async scheduled(controller, env, ctx) {
    ctx.waitUntil(runSchedule(controller.cron, env, new Date(controller.scheduledTime)));
  },
  async queue(batch, env) {
    await consumeJobs(batch, env);
  },
} satisfies ExportedHandler<Env>;
