// The drill's dispatch: what the runner needs for its half (databases, ML),
// with the secrets only this hop may carry: scratch database URLs on the
// drill server, the scratch MLflow server, the age identities.
import { databaseUrl } from "../config.ts";
import { AppError } from "../shared/errors.ts";
import { ageIdentities } from "../jobs/dispatch.ts";
import type { DispatchContext } from "../jobs/kind.ts";
import { drScratchJobPrefix, drScratchName, type CanaryDispatch, type DrillDispatch, type DrillParams } from "./protocol.ts";
import { drSettings } from "./settings.ts";

export async function buildDrillDispatch(p: DrillParams, ctx: DispatchContext): Promise<DrillDispatch> {
  const { job, env, config, catalog } = ctx;
  const settings = drSettings(config);
  const databases: DrillDispatch["databases"] = [];
  const servers = new Set<string>();
  for (const [i, d] of p.databases.entries()) {
    const source = databaseUrl(config, env, d.database);
    const server = settings.database_url ?? source;
    if (!server) throw new AppError("database_not_configured", `no connection URL configured for database "${d.database}" and DR_DATABASE_URL is not set`);
    const backup = await catalog.getBackup(d.backup_id);
    if (!backup) throw new AppError("backup_missing", `backup ${d.backup_id} is no longer listed`);
    const scratch = new URL(server);
    scratch.pathname = `/${drScratchName(job.id, i)}`;
    // Never the source: a scratch name carries the drill prefix, which no configured database's URL names.
    if (source && new URL(source).pathname === scratch.pathname && new URL(source).host === scratch.host) {
      throw new AppError("scratch_is_source", `the scratch database for ${d.database} would be the source itself`);
    }
    databases.push({ database: d.database, backup_id: d.backup_id, manifest_key: backup.manifest_key, target_url: scratch.toString() });
    const maintenance = new URL(server);
    maintenance.pathname = "/postgres";
    servers.add(maintenance.toString());
  }
  const ml: DrillDispatch["ml"] = [];
  for (const m of p.ml) {
    const backup = await catalog.getBackup(m.backup_id);
    if (!backup) throw new AppError("backup_missing", `ML backup ${m.backup_id} is no longer listed`);
    if (!settings.mlflow) throw new AppError("mlflow_not_configured", "DR_MLFLOW_TRACKING_URI is not set");
    ml.push({ server: m.server, backup_id: m.backup_id, manifest_key: backup.manifest_key, mlflow: settings.mlflow });
  }
  // Scratch databases of drills still running are theirs; everything else with the prefix is debris.
  const running = await catalog.listJobs({ status: "running", kind: "dr.drill", limit: 200 });
  const keep = [job.id, ...running.map((r) => r.id)].map(drScratchJobPrefix);
  return {
    kind: "dr.drill", job_id: job.id, repository: await ctx.repository("drill", "-"),
    identities: p.scenario?.escrow_only ? escrowIdentity(settings.escrow_identity) : ageIdentities(env),
    databases, ml, sweep: [...servers].map((database_url) => ({ database_url })), keep_prefixes: [...new Set(keep)],
    ...(p.scenario?.name === "table_dropped" ? { drop_table: p.scenario.table ?? "" } : {}),
  };
}

/** key_holder_unavailable: only the escrow identity (AGE_ESCROW_IDENTITY), as if the usual key holders were gone. */
function escrowIdentity(escrow: string | undefined): string[] {
  if (!escrow) throw new AppError("escrow_missing", "AGE_ESCROW_IDENTITY is not set: there is no escrow identity to restore with");
  return [escrow];
}

/** The canary job: every configured database that has a URL. */
export async function buildCanaryDispatch(ctx: DispatchContext): Promise<CanaryDispatch> {
  const databases = Object.keys(ctx.config.databases).flatMap((database) => {
    const url = databaseUrl(ctx.config, ctx.env, database);
    return url ? [{ database, database_url: url }] : [];
  });
  return { kind: "dr.canary", job_id: ctx.job.id, repository: await ctx.repository("read", "-"), databases };
}
