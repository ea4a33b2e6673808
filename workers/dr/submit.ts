// Starting a drill: the restore points are chosen now (and recorded on the
// job row and in dr_runs), one per configured source of every enabled domain.
// A domain that should be proven but has nothing to restore is a failure of
// the drill, not a silent skip.
import type { Catalog } from "../catalog/catalog.ts";
import { openStorageCatalog } from "../catalog/storage-catalog.ts";
import type { BackupRow } from "../catalog/schema.ts";
import { mlflowAccess } from "../config.ts";
import type { KindContext } from "../context.ts";
import { submitJob } from "../jobs/submit.ts";
import { drDrill } from "./kinds.ts";
import type { DrillParams } from "./protocol.ts";
import { openDrStore } from "./runs.ts";
import { drSettings, enabled, type DrDomain, type DrSettings } from "./settings.ts";

/** What a scenario narrows a drill to (scenarios.ts); a plain drill takes every enabled domain and source. */
export interface DrillScope {
  domains?: DrDomain[];
  database?: string;
  /** Newest verified point created before this time (bad_migration). */
  before?: string;
  scenario?: NonNullable<DrillParams["scenario"]>;
}

export async function submitDrill(ctx: KindContext, req: { trigger: DrillParams["trigger"]; actor: string; scope?: DrillScope }) {
  const { env, catalog, config } = ctx;
  const settings = drSettings(config);
  const scope = req.scope ?? {};
  const on = (d: DrDomain) => (scope.domains ? scope.domains.includes(d) : enabled(settings, d));
  const params: DrillParams = {
    trigger: req.trigger, restore_point: settings.restore_point, databases: [], ml: [], storage: [], catalog: on("catalog"), missing: [],
    ...(scope.scenario ? { scenario: scope.scenario } : {}),
  };
  if (on("database") && config.database_backup_enabled) {
    for (const database of Object.keys(config.databases).filter((d) => !scope.database || d === scope.database)) {
      const point = scope.before
        ? (await catalog.listBackups({ domain: "database", source: database, status: "completed", limit: 500 })).find((b) => b.verify_status === "passed" && b.created_at < scope.before!)
        : await pickDatabasePoint(catalog, settings, database, ctx.now);
      if (point) params.databases.push({ database, backup_id: point.id });
      else params.missing.push({ domain: "database", source: database, reason: `no verified backup of ${database}${scope.before ? ` before ${scope.before}` : settings.restore_point === "random" ? ` in the last ${settings.random_window_days} days` : ""}` });
    }
  }
  if (on("ml") && config.ml_backup_enabled) {
    for (const server of Object.keys(config.ml_servers)) {
      if (!mlflowAccess(config, env, server)) continue; // a server without a URI is not in use
      const point = await catalog.latestDomainBackup("ml", server);
      if (!point) params.missing.push({ domain: "ml", source: server, reason: `no ML backup of ${server}` });
      else if (!settings.mlflow) params.missing.push({ domain: "ml", source: server, reason: "DR_MLFLOW_TRACKING_URI is not set: no scratch MLflow server to restore into" });
      else params.ml.push({ server, backup_id: point.id });
    }
  }
  if (on("storage") && config.storage_backup_enabled) {
    const storage = openStorageCatalog(env.CATALOG);
    for (const s of config.storage_backup_sources) {
      const snapshot = await storage.latestSnapshot(s.bucket, s.prefix);
      if (snapshot) params.storage.push({ ...s, snapshot_id: snapshot.id });
      else params.missing.push({ domain: "storage", source: `${s.bucket}/${s.prefix}`, reason: `no snapshot of ${s.bucket}/${s.prefix}` });
    }
  }
  const kind = scope.scenario ? `scenario:${scope.scenario.name}` : "drill";
  const { job } = await submitJob(ctx, drDrill, params, { actor: req.actor, target: kind });
  await openDrStore(env.CATALOG).startRun({ id: job.id, kind, trigger: req.trigger, requested_by: req.actor, started_at: job.created_at });
  return { job, params };
}

/** The newest verified backup, or (DR_RESTORE_POINT=random) any verified one of the last N days. */
async function pickDatabasePoint(catalog: Catalog, settings: DrSettings, database: string, at: Date): Promise<BackupRow | undefined> {
  if (settings.restore_point === "latest") return catalog.latestBackup(database, { verified: true });
  const since = new Date(at.getTime() - settings.random_window_days * 86_400_000).toISOString();
  const candidates = (await catalog.listBackups({ domain: "database", source: database, status: "completed", limit: 500 }))
    .filter((b) => b.verify_status === "passed" && b.created_at >= since);
  return candidates[Math.floor(Math.random() * candidates.length)];
}
