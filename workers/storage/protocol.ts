// The storage capability's job parameters. Storage jobs run inside the
// Worker, one Queue message per step (jobs/steps.ts), so they have no
// dispatch or runner result.
import { z } from "zod";

export const StorageSnapshotParams = z.object({
  snapshot_id: z.string(),
  bucket: z.string(),
  prefix: z.string(),
});
export type StorageSnapshotParams = z.infer<typeof StorageSnapshotParams>;

/** Restore from a snapshot, or from the version store as of a time. */
export const StorageRestoreParams = z.object({
  source: z.discriminatedUnion("from", [
    z.object({ from: z.literal("snapshot"), snapshot_id: z.string() }),
    z.object({ from: z.literal("versions"), bucket: z.string(), as_of: z.string() }),
  ]),
  target_bucket: z.string(),
  prefix: z.string(),
  /** One object only; it must lie under prefix. */
  key: z.string().optional(),
  overwrite: z.boolean(),
  dry_run: z.boolean(),
});
export type StorageRestoreParams = z.infer<typeof StorageRestoreParams>;

export const StorageReconcileParams = z.object({ bucket: z.string() });
export type StorageReconcileParams = z.infer<typeof StorageReconcileParams>;

