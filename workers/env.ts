import type { JobMessage } from "./shared/protocol.ts";

/** Bindings, variables and secrets of the Worker (wrangler.toml, .dev.vars, `wrangler secret put`). */
export interface Env {
  BACKUPS: R2Bucket;
  CATALOG: D1Database;
  JOBS: Queue<JobMessage>;
  /** R2 event notifications of protected buckets arrive on astrid-storage-events; the binding lets local tools and tests send them. */
  STORAGE_EVENTS?: Queue<unknown>;
  /** The runner as a Cloudflare Container (production). */
  RUNNER?: DurableObjectNamespace;
  /** The runner as a plain URL (local mode); used when RUNNER is not bound. */
  RUNNER_URL?: string;
  /** Base URL under which the runner reaches this Worker's repository endpoint. */
  REPOSITORY_URL: string;
  /** Bearer tokens, comma-separated lists so a token can be rotated without downtime. */
  ADMIN_TOKEN?: string;
  VIEWER_TOKEN?: string;
  /** Shared secret the Worker presents to the runner. */
  RUNNER_TOKEN: string;
  /** Signs job-scoped repository tokens and seals target URLs. */
  JOB_TOKEN_SECRET: string;
  /** Keys chunk ids; 32 bytes hex. */
  CHUNK_ID_KEY: string;
  /** age identities (private keys), comma-separated; only verify-full and restore jobs receive them. */
  AGE_IDENTITY?: string;
  /** Keys the MAC of every manifest (comma-separated: the first signs, all verify); the runner never receives it (repository/manifest-mac.ts). */
  MANIFEST_MAC_KEY?: string;
  /** ISO date: a manifest without a MAC uploaded since then is refused as forged. */
  MANIFEST_MAC_SINCE?: string;
  [variable: string]: unknown;
}
