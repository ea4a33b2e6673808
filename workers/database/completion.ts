// What the completion of a chunk-store backup or verify records, for every
// domain that stores backups as chunks (database dumps, MLflow exports,
// training data): the manifest is read back from R2 and must agree with the
// runner's report before the catalog lists the backup; a verify's verdict
// marks every backup that shares a damaged chunk.
import type { z } from "zod";
import type { BackupIdentity } from "../catalog/catalog.ts";
import type { KindContext } from "../context.ts";
import type { JobRow } from "../catalog/schema.ts";
import { settle } from "../jobs/complete.ts";
import type { CompletionContext, JobKindSpec } from "../jobs/kind.ts";
import { submitJob } from "../jobs/submit.ts";
import type { StoredBackup, VerifyFindings } from "../shared/protocol.ts";
import { manifestKeyFor } from "../shared/format.ts";
import { affectedByDamage } from "../repository/damage.ts";
import { macConfigured, readAuthenticated } from "../repository/manifest-mac.ts";

export interface ManifestCheck<M> {
  key: string;
  schema: z.ZodType<M>;
  /** Whether the manifest says what the runner reported. */
  agrees(manifest: M): boolean;
}

/**
 * Lists a backup the runner reports as written: its manifest must be present
 * at the expected key, well-formed, and agree with the report; then job
 * success and catalog row go in together, and the configured verification is
 * queued. A backup whose manifest disagrees is never listed.
 */
export async function completeStoredBackup<P, R extends StoredBackup, M>(
  c: CompletionContext<P, R>, row: BackupIdentity, manifest: ManifestCheck<M>, verifier: JobKindSpec,
): Promise<void> {
  if (c.outcome.status === "failed") return settle(c);
  const r = c.outcome.result;
  const problem = await manifestProblem(c, c.job, r, manifest);
  if (problem) return void (await c.catalog.failJob(c.job.id, { code: "manifest_mismatch", message: problem }, c.now));
  if (await c.catalog.recordBackup(c.job.id, row, r, c.now)) await verifyAfterBackup(c, r.backup_id, verifier);
}

export async function manifestProblem<M>(c: KindContext, job: JobRow, r: Pick<StoredBackup, "backup_id" | "manifest_key">, m: ManifestCheck<M>): Promise<string | undefined> {
  if (r.backup_id !== job.backup_id) return `runner reported backup ${r.backup_id} for job of ${job.backup_id}`;
  if (r.manifest_key !== m.key) return `unexpected manifest key ${r.manifest_key}`;
  const read = await readAuthenticated(c.env, r.manifest_key);
  if (!read) return `manifest ${r.manifest_key} is missing from the repository`;
  // The Worker MACed the manifest when the runner wrote it through /repo/v1: one without a valid MAC did not come that way.
  if (read.auth === "forged" || (read.auth === "unauthenticated" && macConfigured(c.env))) return `manifest ${r.manifest_key} does not carry a valid MAC`;
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(read.bytes));
  } catch {
    return `manifest ${r.manifest_key} is malformed: not JSON`;
  }
  const parsed = m.schema.safeParse(json);
  if (!parsed.success) return `manifest ${r.manifest_key} is malformed: ${parsed.error.issues[0]?.message}`;
  return m.agrees(parsed.data) ? undefined : `manifest ${r.manifest_key} disagrees with the runner's report`;
}

/** Queues the configured verification of a new backup: the RPO counts verified restore points only. */
export async function verifyAfterBackup(c: KindContext, backupId: string, verifier: JobKindSpec): Promise<void> {
  const depth = c.config.database_verify_after_backup;
  if (depth === "off") return;
  try {
    await submitJob(c, verifier, { backup_id: backupId, depth }, { backup_id: backupId, actor: "policy:verify_after_backup", target: backupId });
  } catch (e) {
    // The backup is recorded either way; an unverified one just does not count toward the RPO yet.
    console.error(`could not queue the verification of ${backupId}: ${(e as Error).message}`);
  }
}

/**
 * A verify's verdict. Chunks are shared: damage found through one backup
 * marks every backup whose manifest uses the chunk, as the Worker works it
 * out (repository/damage.ts), never as the runner lists it; the job's result
 * carries that list. A passing full verify clears a corrupt mark.
 */
export async function completeVerify<P>(c: CompletionContext<P, VerifyFindings>): Promise<void> {
  const r = c.outcome.result;
  if (!r) return settle(c);
  await c.catalog.recordVerification(r.backup_id, { at: c.now, depth: r.depth, ok: r.ok, problems: r.problems });
  const affected = r.ok ? [] : await affectedByDamage(c.env.BACKUPS, manifestKeyFor(r.backup_id), r.problems);
  for (const other of affected) {
    if (other === r.backup_id) continue;
    await c.catalog.recordVerification(other, { at: c.now, depth: r.depth, ok: false, problems: [`damaged chunks found by verifying ${r.backup_id}`, ...r.problems] });
  }
  await settle({ ...c, outcome: { ...c.outcome, result: { ...r, affected_backups: affected } } });
}

/** A restore's measured duration: what the RTO figures are made of. */
export async function completeRestore<P>(c: CompletionContext<P, { backup_id: string; duration_ms: number }>): Promise<void> {
  if (c.outcome.status === "succeeded") {
    // Never less than the Worker saw the job run: a runner cannot report a flattering RTO.
    const seen = c.job.started_at ? c.now.getTime() - Date.parse(c.job.started_at) : 0;
    await c.catalog.recordRestore(c.outcome.result.backup_id, Math.round(Math.max(c.outcome.result.duration_ms, seen)));
  }
  await settle(c);
}
