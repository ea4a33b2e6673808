// The runner's own settings, read from its environment once. Everything a
// job needs beyond these comes in its dispatch; the Worker's settings live in
// workers/config.ts.
const number = (name: string, fallback: number): number => {
  const text = process.env[name];
  const value = text === undefined || text === "" ? fallback : Number(text);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer, not ${JSON.stringify(text)}`);
  return value;
};

export const RUNNER_SETTINGS = {
  /** How often a running job reports progress, which renews its lease and its token. */
  heartbeatMs: number("RUNNER_HEARTBEAT_MS", 5000),
  /** MLflow runs exported or restored at once: bounded by what the MLflow server can take. */
  mlRunConcurrency: number("ML_RUN_CONCURRENCY", 6),
  /** Pack uploads (~8 MiB each) a backup keeps in flight: more hides the repository's latency, each costs a pack of memory. */
  packUploads: number("PACK_UPLOAD_CONCURRENCY", 2),
} as const;
