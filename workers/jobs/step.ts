// The contract between the step runner (steps.ts) and the jobs the Worker
// runs itself: what a step is given and what it answers.
import type { Catalog } from "../catalog/catalog.ts";
import type { JobRow } from "../catalog/schema.ts";
import type { BackupConfig } from "../config.ts";
import type { Env } from "../env.ts";
import type { JobProgress } from "../shared/protocol.ts";

export interface StepContext {
  job: JobRow;
  params: unknown;
  /** What the previous step saved; undefined on the first step. */
  state: unknown;
  env: Env;
  config: BackupConfig;
  catalog: Catalog;
  now: Date;
}

export type StepOutcome =
  | { next: unknown; progress: JobProgress }
  | { done: unknown }
  | { failed: { code: string; message: string }; result?: unknown };

export type StepHandler = (ctx: StepContext) => Promise<StepOutcome>;

/** A step that cannot succeed by retrying (unknown bucket, missing snapshot): the job fails at once. */
export class StepFailure extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}


/** A step has a Queue consumer's whole wall-clock budget (15 minutes) before it counts as lost. */
export const STEP_LEASE_SECONDS = 15 * 60;
