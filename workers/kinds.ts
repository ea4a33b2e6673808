// The registry: every job kind and scheduled task of the Worker. A new kind
// is declared in its capability's folder and listed here; nothing else in
// the machinery (workers/jobs/) changes. The runner has the same list from
// kind to handler in runner/kinds.ts.
import { KindRegistry } from "./jobs/kind.ts";
import { databaseKinds, databaseTasks } from "./database/kinds.ts";
import { mlKinds, mlTasks } from "./ml/kinds.ts";
import { storageKinds, storageTasks } from "./storage/kinds.ts";
import { maintenanceKinds, maintenanceTasks } from "./maintenance/kinds.ts";
import { drKinds } from "./dr/kinds.ts";
import { drTasks } from "./dr/tasks.ts";
import { jobAlert } from "./dr/job-alerts.ts";
import { continuousKinds, continuousTasks } from "./continuous/kinds.ts";

export const kinds = new KindRegistry(
  [...databaseKinds, ...mlKinds, ...storageKinds, ...maintenanceKinds, ...drKinds, ...continuousKinds],
  [...databaseTasks, ...mlTasks, ...maintenanceTasks, ...storageTasks, ...drTasks, ...continuousTasks],
  // A failed job alerts as soon as it ends (the watch task also re-evaluates every 10 minutes); drills alert themselves.
  { settled: [(ctx, job) => (job.kind === "dr.drill" ? Promise.resolve() : jobAlert(ctx, job))] },
);
