// The repository capability's job protocol: garbage collection of packs no
// manifest references (repository.gc), run on the runner.
import { z } from "zod";
import { DispatchBase } from "../shared/protocol.ts";

export const RepositoryGcParams = z.object({
  /** Unreferenced objects younger than this are kept: a backup may still be about to reference them. */
  grace_minutes: z.number().int().nonnegative(),
  dry_run: z.boolean(),
});
export type RepositoryGcParams = z.infer<typeof RepositoryGcParams>;

export const RepositoryGcDispatch = DispatchBase.extend({
  kind: z.literal("repository.gc"),
  ...RepositoryGcParams.shape,
});
export type RepositoryGcDispatch = z.infer<typeof RepositoryGcDispatch>;

export const RepositoryGcResult = z.object({
  kind: z.literal("repository.gc"),
  dry_run: z.boolean(),
  manifests: z.number().int().nonnegative(),
  scanned_objects: z.number().int().nonnegative(),
  deleted_objects: z.number().int().nonnegative(),
  reclaimed_bytes: z.number().int().nonnegative(),
  /** Unreferenced but inside the grace period. */
  kept_young: z.number().int().nonnegative(),
  duration_ms: z.number().nonnegative(),
});
export type RepositoryGcResult = z.infer<typeof RepositoryGcResult>;

