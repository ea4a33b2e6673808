// What a job kind is. Each capability declares its kinds once, in its own
// folder (database/kinds.ts, ml/kinds.ts, ...), and workers/kinds.ts lists
// them. The jobs machinery (submit, consumer, completion, schedule, steps)
// works from these declarations and knows no capability by name.
import type { z } from "zod";
import type { JobRow } from "../catalog/schema.ts";
import type { BackupConfig } from "../config.ts";
import type { KindContext } from "../context.ts";
export type { KindContext };
import type { DispatchBase, JobError, JobProgress } from "../shared/protocol.ts";
import type { JobGrant } from "../repository/job-token.ts";


/** The dispatch hook's extra tool: a job-scoped repository token for this job. */
export interface DispatchContext extends KindContext {
  job: JobRow;
  repository(scope: JobGrant["scope"], backupId: string): Promise<DispatchBase["repository"]>;
}

/** A runner's report on a job of this kind, its result already checked against the kind's result schema. */
export type Outcome<R> = { status: "succeeded"; result: R } | { status: "failed"; error: JobError; result?: R };

export interface CompletionContext<P, R> extends KindContext {
  job: JobRow;
  params: P;
  outcome: Outcome<R>;
}

/** What a step of a Worker-run kind is given and answers (jobs/steps.ts runs them). */
export interface StepContext<P = unknown> extends KindContext {
  job: JobRow;
  params: P;
  /** What the previous step saved; undefined on the first step. */
  state: unknown;
}

export type StepOutcome =
  | { next: unknown; progress: JobProgress }
  | { done: unknown }
  | { failed: JobError; result?: unknown };

interface KindBase<P> {
  /** "<capability>.<verb>": the jobs.kind column, the audit action, the runner's handler key. */
  kind: string;
  /** The job row's parameters: submitJob accepts only these, the machinery parses them back. */
  params: z.ZodType<P, any>;
  /**
   * Jobs with the same key never run side by side: a second one waits in the
   * queue (status queued, with the reason) until the first has ended. Default:
   * no key, no limit beyond the runner-wide one.
   */
  concurrencyKey?(params: P): string;
  /** Runs alone: not claimed while any other job is active, and nothing else is claimed while it is (garbage collection). */
  exclusive?: boolean;
  /**
   * Runs until told to stop (a change stream): it does not count against
   * RUNNER_MAX_JOBS, is not claimed while an exclusive job waits or runs, and
   * its capability tells it to stop when one waits, so an exclusive job is
   * never shut out by it for longer than one of its heartbeats.
   */
  longRunning?: boolean;
  /** The backup domains whose backups this kind verifies (POST /backups/:id/verify picks the kind by domain). */
  verifies?: readonly string[];
}

/** A kind the runner executes: the Worker dispatches it and records the completion the runner reports. */
export interface RunnerKind<P, R> extends KindBase<P> {
  runs: "runner";
  /** The runner's message: the params plus what only this hop may carry (URLs, keys, a repository token). */
  dispatch(params: P, ctx: DispatchContext): Promise<DispatchBase & Record<string, unknown>>;
  /** The result this kind's runner reports; a completion with another kind's result is refused. */
  result: z.ZodType<R, any>;
  /** What a completion records. Default: the job settles with the outcome. */
  complete?(ctx: CompletionContext<P, R>): Promise<void>;
}

/** A kind the Worker runs itself, one bounded step per Queue message (R2-to-R2 work needs no container). */
export interface WorkerKind<P> extends KindBase<P> {
  runs: "worker";
  step(ctx: StepContext<P>): Promise<StepOutcome>;
}

export type JobKindSpec<P = any, R = any> = RunnerKind<P, R> | WorkerKind<P>;

/** Declares a runner kind with its types inferred from the schemas. */
export function runnerKind<S extends z.ZodType, T extends z.ZodType>(
  spec: Omit<RunnerKind<z.infer<S>, z.infer<T>>, "params" | "result" | "runs"> & { params: S; result: T },
): RunnerKind<z.infer<S>, z.infer<T>> {
  return { ...spec, runs: "runner" } as RunnerKind<z.infer<S>, z.infer<T>>;
}

/** Declares a Worker-run (stepped) kind with its parameter type inferred from the schema. */
export function workerKind<S extends z.ZodType>(spec: Omit<WorkerKind<z.infer<S>>, "params" | "runs"> & { params: S }): WorkerKind<z.infer<S>> {
  return { ...spec, runs: "worker" } as WorkerKind<z.infer<S>>;
}

/** A cron-driven task: which setting holds its cron, whether it is on, and what it submits. */
export interface ScheduledTask {
  /** What the task is, for logs. */
  name: string;
  /** The setting's cron expression: wrangler.toml must list it as a trigger, on or off. */
  cron(config: BackupConfig): string;
  /** Off tasks do nothing when their cron fires (BACKUP_ENABLED=false turns every task off). */
  enabled(config: BackupConfig): boolean;
  /** Submits its jobs (and does any inline work, e.g. retention); answers the job ids. */
  run(ctx: KindContext, actor: string): Promise<string[]>;
}

/** Told of every job that has ended (alerts): after the job is settled, so it can never change the outcome. */
export type SettledHook = (ctx: KindContext, job: JobRow) => Promise<void>;

/** Every kind and scheduled task of the Worker; built once by workers/kinds.ts and handed to the machinery. */
export class KindRegistry {
  readonly #kinds = new Map<string, JobKindSpec>();
  readonly tasks: readonly ScheduledTask[];
  readonly settledHooks: readonly SettledHook[];

  constructor(kinds: readonly JobKindSpec[], tasks: readonly ScheduledTask[], hooks: { settled?: SettledHook[] } = {}) {
    for (const k of kinds) {
      if (this.#kinds.has(k.kind)) throw new Error(`job kind ${k.kind} is declared twice`);
      this.#kinds.set(k.kind, k);
    }
    this.tasks = tasks;
    this.settledHooks = hooks.settled ?? [];
  }

  /** Runs the settled hooks; a failing hook is logged, never thrown (the job has ended either way). */
  async settled(ctx: KindContext, job: JobRow | undefined): Promise<void> {
    if (!job || (job.status !== "succeeded" && job.status !== "failed")) return;
    for (const hook of this.settledHooks) {
      try {
        await hook(ctx, job);
      } catch (e) {
        console.error(`after job ${job.id}: ${(e as Error).message}`);
      }
    }
  }

  get(kind: string): JobKindSpec | undefined {
    return this.#kinds.get(kind);
  }

  all(): JobKindSpec[] {
    return [...this.#kinds.values()];
  }

  /** Kinds the Worker runs itself: the catalog resumes their lost steps instead of failing them as runner_lost. */
  workerKinds(): string[] {
    return this.all().filter((k) => k.runs === "worker").map((k) => k.kind);
  }

  exclusiveKinds(): string[] {
    return this.all().filter((k) => k.exclusive).map((k) => k.kind);
  }

  longRunningKinds(): string[] {
    return this.all().filter((k) => k.longRunning).map((k) => k.kind);
  }

  /** The kind that verifies backups of a domain (database.verify, ml.verify). */
  verifierFor(domain: string): JobKindSpec | undefined {
    return this.all().find((k) => k.verifies?.includes(domain));
  }

  /** Every cron the config uses: wrangler.toml must list each as a trigger. */
  schedules(config: BackupConfig): string[] {
    return [...new Set(this.tasks.map((t) => t.cron(config)))];
  }
}
