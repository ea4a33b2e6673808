// Repository maintenance as a job kind: garbage collection of packs no manifest
// references (retention deletes manifests, never chunks). It runs on the
// runner and runs alone (see catalog.claimJob), weekly and on demand.
import { runnerKind, type ScheduledTask } from "../jobs/kind.ts";
import { submitJob } from "../jobs/submit.ts";
import { RepositoryGcParams, RepositoryGcResult, type RepositoryGcDispatch } from "./protocol.ts";

export const repositoryGc = runnerKind({
  kind: "repository.gc", params: RepositoryGcParams, result: RepositoryGcResult, exclusive: true,
  async dispatch(p, ctx): Promise<RepositoryGcDispatch> {
    return { kind: "repository.gc", job_id: ctx.job.id, ...p, repository: await ctx.repository("gc", "-") };
  },
});

export const maintenanceKinds = [repositoryGc];

export const maintenanceTasks: ScheduledTask[] = [
  {
    name: "repository garbage collection", cron: (c) => c.repository_gc_schedule, enabled: () => true,
    async run(ctx, actor) {
      const params = { grace_minutes: ctx.config.gc_grace_minutes, dry_run: false };
      return [(await submitJob(ctx, repositoryGc, params, { actor, target: "repository" })).job.id];
    },
  },
];
