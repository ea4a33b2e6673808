// simulate_disaster_scenario: the catalogue of disasters and how each is
// simulated. Every simulation runs on scratch copies only (a scratch
// database, a scratch prefix, a scratch MLflow server, an in-memory catalog)
// and follows the recovery its runbook section prescribes; it is a drill job
// narrowed to what the scenario needs (submit.ts), recorded in dr_runs as
// "scenario:<name>", and its result links to docs/runbook.md.
import { z } from "zod";
import { AppError } from "../shared/errors.ts";
import type { DrillScope } from "./submit.ts";

export interface Scenario {
  summary: string;
  /** What the simulation does, on scratch copies. */
  simulation: string;
  /** Not simulated by this service yet: the runbook section still applies. */
  simulated: boolean;
  scope: (body: ScenarioRequest) => DrillScope;
}

export const ScenarioRequest = z.strictObject({
  database: z.string().regex(/^[a-z][a-z0-9_]{0,62}$/).optional(),
  /** table_dropped: "schema.table" (default: the backup's largest table). */
  table: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/, "a table is name or schema.name").optional(),
  /** bad_migration: the migration's time; the newest verified point before it is restored. */
  before: z.iso.datetime().optional(),
});
export type ScenarioRequest = z.infer<typeof ScenarioRequest>;

const scenario = (name: string, s: Omit<Scenario, "scope">, scope: (b: ScenarioRequest) => Omit<DrillScope, "scenario">, extra: (b: ScenarioRequest) => Partial<NonNullable<DrillScope["scenario"]>> = () => ({})): Scenario => ({
  ...s, scope: (b) => ({ ...scope(b), scenario: { name, ...extra(b) } }),
});

const notSimulated = (name: string, summary: string): Scenario =>
  scenario(name, { summary, simulation: "not simulated yet: follow the runbook section", simulated: false }, () => ({ domains: [] }));

export const SCENARIOS: Record<string, Scenario> = {
  database_lost: scenario("database_lost", {
    summary: "The production database is gone (dropped, corrupted, its server lost).",
    simulation: "restore the newest verified backup into a new scratch database, validate it table by table and its schema against the backup's consistency record, drop it",
    simulated: true,
  }, (b) => ({ domains: ["database"], ...(b.database ? { database: b.database } : {}) })),
  table_dropped: scenario("table_dropped", {
    summary: "One table was dropped or truncated by mistake; the rest of the database is fine.",
    simulation: "restore the newest verified backup into a scratch database (standing in for production), DROP the table there, bring it back with pg_restore -n -t from the backup, check its rows and checksum",
    simulated: true,
  }, (b) => ({ domains: ["database"], ...(b.database ? { database: b.database } : {}) }), (b) => ({ ...(b.table ? { table: b.table } : {}) })),
  bad_migration: scenario("bad_migration", {
    summary: "A migration or a bad deploy damaged data at a known time.",
    simulation: "restore the newest verified restore point before `before` into a scratch database and validate it",
    simulated: true,
  }, (b) => {
    if (!b.before) throw new AppError("invalid_request", "bad_migration needs \"before\": the migration's time (ISO 8601)", 400);
    return { domains: ["database"], before: b.before, ...(b.database ? { database: b.database } : {}) };
  }),
  bucket_deleted: scenario("bucket_deleted", {
    summary: "An R2 bucket (or everything under a prefix) was deleted.",
    simulation: "restore every object of each source's newest snapshot into a scratch prefix, hash every object against the manifest, remove the prefix",
    simulated: true,
  }, () => ({ domains: ["storage"] }), () => ({ whole: true })),
  mlflow_lost: scenario("mlflow_lost", {
    summary: "The MLflow tracking server or its store is gone.",
    simulation: "restore the newest ML backup into the scratch MLflow server (DR_MLFLOW_TRACKING_URI), compare counts and every artifact's SHA-256 with the manifest",
    simulated: true,
  }, () => ({ domains: ["ml"] })),
  catalog_lost: scenario("catalog_lost", {
    summary: "The D1 catalog is lost or wiped.",
    simulation: "rebuild the catalog from the manifests in R2 into a scratch set and compare it with the live catalog: every backup listed, none extra, none different",
    simulated: true,
  }, () => ({ domains: ["catalog"] })),
  key_holder_unavailable: scenario("key_holder_unavailable", {
    summary: "The people or systems holding the age identity are unavailable; only the escrow key is at hand.",
    simulation: "restore the newest verified backup with the escrow identity alone (AGE_ESCROW_IDENTITY) into a scratch database and validate it",
    simulated: true,
  }, (b) => ({ domains: ["database"], ...(b.database ? { database: b.database } : {}) }), () => ({ escrow_only: true })),
  objects_overwritten: scenario("objects_overwritten", {
    summary: "Objects under a prefix were overwritten with bad data.",
    simulation: "copy each versioned source's objects (up to DR_STORAGE_SAMPLE) to a scratch prefix, overwrite them there, recover them with an as-of restore from the version store, hash every one, remove the prefix",
    simulated: true,
  }, () => ({ domains: [] })),
  region_outage: scenario("region_outage", {
    summary: "The R2 region of a bucket is unavailable; the replica must serve.",
    simulation: "list each replicated bucket and its replica side by side (read only): every object present with the source's etag and size, nothing extra; drift must be 0",
    simulated: true,
  }, () => ({ domains: [] })),
  runner_lost: notSimulated("runner_lost", "The runner died mid-job (host lost, container evicted)."),
};

export function runbookLink(name: string): string {
  return `docs/runbook.md#scenario-${name.replace(/_/g, "-")}`;
}

export function scenarioCatalogue() {
  return Object.entries(SCENARIOS).map(([name, s]) => ({ name, summary: s.summary, simulation: s.simulation, simulated: s.simulated, runbook: runbookLink(name) }));
}
