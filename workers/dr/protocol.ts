// The disaster-recovery kinds' messages (dr.drill, dr.canary): job params
// (never a secret), the runner's dispatch and its result. The runner's half
// of a drill (runner/dr/) reads these too.
import { z } from "zod";
import { DatabaseName, DispatchBase, MlName } from "../shared/protocol.ts";
import { MlflowAccess } from "../ml/protocol.ts";

/** Every drill scratch database's name starts so: the sweep finds what a killed drill left by this prefix. */
export const DR_SCRATCH_PREFIX = "astrid_dr_";

export function drScratchJobPrefix(jobId: string): string {
  return `${DR_SCRATCH_PREFIX}${jobId.toLowerCase().replace(/[^a-z0-9]/g, "_").slice(0, 40)}_`;
}

/** The scratch database of a drill's i-th database: the job id (sanitised) ties it to its drill. */
export function drScratchName(jobId: string, index: number): string {
  return `${drScratchJobPrefix(jobId)}${index}`;
}

/** A drill job's row params: which restore points it proves (chosen at submit time). */
export const DrillParams = z.object({
  trigger: z.enum(["manual", "scheduled"]),
  restore_point: z.enum(["latest", "random"]),
  databases: z.array(z.object({ database: DatabaseName, backup_id: z.string() })),
  ml: z.array(z.object({ server: MlName, backup_id: z.string() })),
  storage: z.array(z.object({ bucket: z.string(), prefix: z.string(), snapshot_id: z.string() })),
  catalog: z.boolean(),
  /** Domains asked for that have nothing to restore: each is a failed domain of the drill. */
  missing: z.array(z.object({ domain: z.string(), source: z.string(), reason: z.string() })),
  /** A disaster scenario run (workers/dr/scenarios.ts) rather than a plain drill. */
  scenario: z.object({
    name: z.string(),
    /** table_dropped: "schema.table" to drop and restore. */
    table: z.string().optional(),
    /** storage scenarios: restore every object, not a sample. */
    whole: z.boolean().optional(),
    /** key_holder_unavailable: decrypt with the escrow identity only. */
    escrow_only: z.boolean().optional(),
  }).optional(),
});
export type DrillParams = z.infer<typeof DrillParams>;

export const DrillDispatch = DispatchBase.extend({
  kind: z.literal("dr.drill"),
  identities: z.array(z.string()).min(1),
  /** Each database's restore point and the scratch database it goes into (target_url: a secret, it carries credentials). */
  databases: z.array(z.object({ database: DatabaseName, backup_id: z.string(), manifest_key: z.string(), target_url: z.string().min(1) })),
  ml: z.array(z.object({ server: MlName, backup_id: z.string(), manifest_key: z.string(), mlflow: MlflowAccess })),
  /** Maintenance connections of the drill servers: leftover scratch databases (a killed drill) are dropped there. */
  sweep: z.array(z.object({ database_url: z.string().min(1) })),
  /** Scratch databases of drills still running elsewhere: the sweep leaves them alone. */
  keep_prefixes: z.array(z.string()),
  /** table_dropped: after restoring, drop this table ("schema.table", "" = the largest) and bring it back with pg_restore -t. */
  drop_table: z.string().optional(),
});
export type DrillDispatch = z.infer<typeof DrillDispatch>;

/** One domain and source of a drill (or scenario): restored, validated, timed. */
export const DomainResult = z.object({
  domain: z.enum(["database", "storage", "ml", "catalog"]),
  source: z.string(),
  restore_point: z.string().optional(),
  /** When the restore point was taken: the data a restore from it would lose is everything after. */
  point_created_at: z.string().optional(),
  passed: z.boolean(),
  restore_ms: z.number().nonnegative(),
  validate_ms: z.number().nonnegative(),
  bytes: z.number().int().nonnegative(),
  /** One line per problem (a damaged chunk, a table whose rows differ, a missing object...). */
  problems: z.array(z.string()),
  details: z.record(z.string(), z.unknown()).optional(),
});
export type DomainResult = z.infer<typeof DomainResult>;

export const DrillResult = z.object({
  kind: z.literal("dr.drill"),
  domains: z.array(DomainResult),
  /** Scratch databases the sweep dropped (left by a killed drill). */
  swept: z.array(z.string()),
  duration_ms: z.number().nonnegative(),
});
export type DrillResult = z.infer<typeof DrillResult>;

/** DR_CANARY: a timestamped row into each source database, so drills measure the data a recovery really loses. */
export const CanaryParams = z.object({});

export const CanaryDispatch = DispatchBase.extend({
  kind: z.literal("dr.canary"),
  databases: z.array(z.object({ database: DatabaseName, database_url: z.string().min(1) })),
});
export type CanaryDispatch = z.infer<typeof CanaryDispatch>;

export const CanaryResult = z.object({
  kind: z.literal("dr.canary"),
  written: z.array(z.object({ database: z.string(), at: z.string() })),
});
export type CanaryResult = z.infer<typeof CanaryResult>;
