// Turns a claimed job row into what the runner needs: the kind's own dispatch
// hook adds the secrets only this hop may carry (database URLs, keys, a
// job-scoped repository token). The helpers below are what several kinds give.
import { AppError } from "../shared/errors.ts";
import type { JobRow } from "../catalog/schema.ts";
import type { KindContext } from "../context.ts";
import type { Env } from "../env.ts";
import { mintJobToken, tokenExpiry } from "../repository/job-token.ts";
import { readAuthenticated } from "../repository/manifest-mac.ts";
import type { DispatchContext, RunnerKind } from "./kind.ts";

export async function buildDispatch(spec: RunnerKind<unknown, unknown>, job: JobRow, ctx: KindContext) {
  const params = parseParams(spec, job);
  const dispatchCtx: DispatchContext = {
    ...ctx, job,
    repository: async (scope, backup_id) => ({
      url: ctx.env.REPOSITORY_URL,
      token: await mintJobToken(ctx.env.JOB_TOKEN_SECRET, {
        // One lease, renewed with every heartbeat (jobs/runner-routes.ts): a leaked token dies with its job's silence.
        job_id: job.id, scope, backup_id, expires: tokenExpiry(ctx.config.job_lease_seconds, ctx.now),
      }),
    }),
  };
  return spec.dispatch(params, dispatchCtx);
}

/**
 * What every job that writes a backup into the chunk store gets: recipients,
 * the chunk-id key, a write token for its backup. An incremental's parent
 * manifest is checked here, before anything is dispatched: one changed in R2
 * (its MAC no longer matches) would have the new backup reference the
 * attacker's chunks, so the job fails at once and nothing is written.
 */
export async function writerAccess(ctx: DispatchContext, backupId: string, parentManifestKey?: string) {
  if (parentManifestKey) await requireAuthenticParent(ctx, parentManifestKey);
  return {
    recipients: ctx.config.encryption_recipients,
    chunk_id_key: requireSecret(ctx.env.CHUNK_ID_KEY, "CHUNK_ID_KEY"),
    repository: await ctx.repository("write", backupId),
    ...(parentManifestKey ? { parent_manifest_key: parentManifestKey } : {}),
  };
}

/**
 * What every job that restores a backup gets: the identities to decrypt it,
 * the chunk-id key to check every chunk is the plaintext its id names, and a
 * read token for that backup.
 */
export async function readerAccess(ctx: DispatchContext, backupId: string) {
  return {
    identities: ageIdentities(ctx.env), chunk_id_key: requireSecret(ctx.env.CHUNK_ID_KEY, "CHUNK_ID_KEY"),
    repository: await ctx.repository("read", backupId),
  };
}

async function requireAuthenticParent(ctx: DispatchContext, key: string): Promise<void> {
  const read = await readAuthenticated(ctx.env, key);
  // A parent gone missing is the runner's to report (it cannot read it); only a forged one is refused here.
  if (read?.auth !== "forged") return;
  await ctx.catalog.audit({
    actor: "worker", action: "repository.manifest_forged", target: key, outcome: "denied", detail: { job_id: ctx.job.id, at: "dispatch" },
  });
  throw new AppError(
    "parent_not_authentic",
    `the parent backup's manifest ${key} does not carry a valid MAC (changed in R2?): refusing to build an incremental on it; verify it, or take a full backup`,
  );
}

/** A Worker secret a dispatch needs; its absence fails the job at once (retrying will not set it). */
export function requireSecret(value: unknown, name: string): string {
  if (typeof value !== "string" || value === "") throw new AppError("secret_missing", `the Worker secret ${name} is not set`);
  return value;
}

/** The age identities (AGE_IDENTITY, comma list): only restore and full-verify dispatches carry them. */
export function ageIdentities(env: Env): string[] {
  return requireSecret(env.AGE_IDENTITY, "AGE_IDENTITY").split(",").map((s) => s.trim()).filter(Boolean);
}

/** The job row's parameters through the kind's schema; a row that no longer parses fails its job at once. */
export function parseParams<P>(spec: { kind: string; params: import("zod").ZodType<P, any> }, job: JobRow): P {
  const parsed = spec.params.safeParse(JSON.parse(job.params));
  if (!parsed.success) throw new AppError("invalid_params", `${spec.kind}: stored parameters do not parse: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}
