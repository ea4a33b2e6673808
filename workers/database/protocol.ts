// The database capability's job protocol: parameters (job rows), dispatches
// (Worker -> runner) and results (runner -> Worker) of database.backup,
// database.verify and database.restore. Imported by both sides.
import { z } from "zod";
import { BackupType, DatabaseName, DispatchBase, StoredBackup, VerifyDepth, VerifyFindings, VerifyParams, WriteAccess } from "../shared/protocol.ts";
import { TargetPolicy } from "../shared/target-policy.ts";

export const DatabaseBackupParams = z.object({
  database: DatabaseName,
  type: BackupType,
  backup_id: z.string(),
});
export type DatabaseBackupParams = z.infer<typeof DatabaseBackupParams>;

export const DatabaseVerifyParams = VerifyParams;
export type DatabaseVerifyParams = VerifyParams;

export const DatabaseRestoreParams = z.object({
  backup_id: z.string(),
  /** What the operator sees: a configured name, or "<dbname> (url)". */
  target_label: z.string(),
  /** A configured database name, or absent when the target came as a sealed URL. */
  target_database: DatabaseName.optional(),
  /** The target URL sealed with the Worker's key; only the Worker can open it. */
  target_url_sealed: z.string().optional(),
  replace: z.boolean(),
});
export type DatabaseRestoreParams = z.infer<typeof DatabaseRestoreParams>;

export const DatabaseBackupDispatch = DispatchBase.extend({
  ...WriteAccess.shape,
  kind: z.literal("database.backup"),
  backup_id: z.string().min(1),
  database: DatabaseName,
  type: BackupType,
  source_url: z.string().min(1),
});
export type DatabaseBackupDispatch = z.infer<typeof DatabaseBackupDispatch>;

export const DatabaseVerifyDispatch = DispatchBase.extend({
  kind: z.literal("database.verify"),
  backup_id: z.string().min(1),
  manifest_key: z.string().min(1),
  depth: VerifyDepth,
  /** age identities; required for depth "full" only. */
  identities: z.array(z.string()).default([]),
  /** depth "full": every chunk's keyed id is checked against its plaintext (a planted chunk is refused). */
  chunk_id_key: z.string().regex(/^[0-9a-f]{64}$/).optional(),
});
export type DatabaseVerifyDispatch = z.infer<typeof DatabaseVerifyDispatch>;

export const DatabaseRestoreDispatch = DispatchBase.extend({
  kind: z.literal("database.restore"),
  backup_id: z.string().min(1),
  manifest_key: z.string().min(1),
  target_url: z.string().min(1),
  /** A target given as a URL: the runner checks every address its host resolves to, and connects to the one it checked. */
  target_policy: TargetPolicy.optional(),
  replace: z.boolean(),
  identities: z.array(z.string()).min(1),
  /** Every chunk's keyed id is checked against its plaintext before it reaches pg_restore. */
  chunk_id_key: z.string().regex(/^[0-9a-f]{64}$/).optional(),
});
export type DatabaseRestoreDispatch = z.infer<typeof DatabaseRestoreDispatch>;

export const DatabaseBackupResult = StoredBackup.extend({ kind: z.literal("database.backup") });
export type DatabaseBackupResult = z.infer<typeof DatabaseBackupResult>;

export const DatabaseVerifyResult = VerifyFindings.extend({ kind: z.literal("database.verify") });
export type DatabaseVerifyResult = z.infer<typeof DatabaseVerifyResult>;

export const DatabaseRestoreResult = z.object({
  kind: z.literal("database.restore"),
  backup_id: z.string(),
  target_database: z.string(),
  bytes: z.number().int().nonnegative(),
  duration_ms: z.number().nonnegative(),
});
export type DatabaseRestoreResult = z.infer<typeof DatabaseRestoreResult>;

