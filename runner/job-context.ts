import type { JobProgress } from "../workers/shared/protocol.ts";
import type { RepositoryClient } from "./repository/client.ts";

/** What a running job may ask of the runner around it. */
export interface JobContext {
  /** The repository through the Worker's job-scoped endpoint, with this job's token. */
  repository: RepositoryClient;
  /** Records progress; the runner sends the latest value with each heartbeat. */
  progress(p: JobProgress): void;
  /** Registers cleanup to run if the runner shuts down mid-job. */
  onCancel(fn: () => void): void;
}
