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

export default {
  fetch: app.fetch,
  async scheduled(controller, env, ctx) {
    ctx.waitUntil(runSchedule(controller.cron, env, kinds, new Date(controller.scheduledTime)));
  },
  async queue(batch, env) {
    if (batch.queue.startsWith(STORAGE_EVENTS_QUEUE)) await consumeStorageEvents(batch, env, loadConfig(env));
    else await consumeJobs(batch, env, kinds);
  },
} satisfies ExportedHandler<Env>;
