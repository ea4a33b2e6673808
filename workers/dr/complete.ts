// A drill's end: the runner's half reports (databases, ML), then the Worker
// proves the parts it owns (storage into a scratch prefix, the catalog rebuilt
// from R2), and the whole is judged: passed only if every domain and source
// passed. The run is recorded in dr_runs, the job settled, the drill alert
// fired or resolved, and a passed scheduled drill pings the dead-man's switch.
import type { Catalog } from "../catalog/catalog.ts";
import type { JobRow } from "../catalog/schema.ts";
import type { CompletionContext } from "../jobs/kind.ts";
import type { Env } from "../env.ts";
import type { DomainResult, DrillParams, DrillResult } from "./protocol.ts";
import { pingDeadman, setAlert } from "./alerts.ts";
import { drillCatalog } from "./catalog-check.ts";
import { openDrStore } from "./runs.ts";
import { drSettings } from "./settings.ts";
import { drillStorage } from "./storage-check.ts";
import { drillReplica } from "./replica-check.ts";
import { drillOverwrite } from "./overwrite-check.ts";

/**
 * A drill's judgement: the runner's restored domains (databases, MLflow) plus
 * what the Worker restores and checks itself (storage, catalog, scenarios'
 * own checks), into one dr_runs row, an alert state and the job's outcome.
 */
export async function completeDrill(c: CompletionContext<DrillParams, DrillResult>): Promise<void> {
  const { env, catalog, job, config, now } = c;
  const p = c.params;
  const completion = c.outcome;
  const settings = drSettings(env);
  const domains: DomainResult[] = [];
  const errors: string[] = [];
  if (completion.status === "failed") errors.push(`runner: ${completion.error.code}: ${completion.error.message}`);
  if (completion.result) domains.push(...completion.result.domains);
  // bucket_deleted restores every object of the snapshot, not a sample.
  const storageSettings = p.scenario?.whole ? { ...settings, storage_sample: Number.MAX_SAFE_INTEGER } : settings;
  for (const s of p.storage) domains.push(await drillStorage(env, config, storageSettings, job.id, s));
  if (p.catalog) domains.push(await drillCatalog(env));
  if (p.scenario?.name === "objects_overwritten") {
    for (const s of config.storage_backup_sources.filter((x) => config.storage_versioned_buckets.includes(x.bucket))) {
      domains.push(await drillOverwrite(env, config, settings, job.id, s.bucket, s.prefix));
    }
  }
  if (p.scenario?.name === "region_outage") {
    for (const [source, replica] of Object.entries(config.storage_replication)) domains.push(await drillReplica(env, config, source, replica));
  }
  for (const m of p.missing) {
    domains.push({ domain: m.domain as DomainResult["domain"], source: m.source, passed: false, restore_ms: 0, validate_ms: 0, bytes: 0, problems: [m.reason] });
  }
  for (const d of domains) for (const problem of d.problems) errors.push(`${d.domain} ${d.source}: ${problem}`);
  const passed = errors.length === 0 && domains.length > 0;
  if (domains.length === 0) errors.push("nothing to restore: no domain is enabled");
  const finished = new Date();
  const result = { kind: "dr.drill", passed, domains, swept: completion.result?.swept ?? [], data_loss_seconds: dataLoss(job, domains) };
  await openDrStore(env.CATALOG).finishRun(job.id, {
    status: passed ? "passed" : "failed", finished_at: finished.toISOString(), results: domains, data_loss_seconds: result.data_loss_seconds, errors,
  });
  if (passed) await catalog.succeedJob(job.id, result, now);
  else await catalog.failJob(job.id, { code: "drill_failed", message: summarise(errors) }, now, result);
  await drillAlert(env, p.scenario ? `scenario:${p.scenario.name}` : "drill", passed, errors);
  if (passed && p.trigger === "scheduled") await pingDeadman(env).catch(() => {});
}

/** A drill whose job ended without a report (runner lost, dispatch gave up): failed, with the job's reason. */
export async function settleOrphanedRuns(env: Env): Promise<number> {
  const store = openDrStore(env.CATALOG);
  const orphans = await store.orphanedRuns();
  for (const o of orphans) {
    const error = `${o.error_code ?? "failed"}: ${o.error_message ?? "the job ended without a report"}`;
    await store.finishRun(o.run.id, { status: "failed", finished_at: o.finished_at ?? new Date().toISOString(), results: [], data_loss_seconds: null, errors: [error] });
    await drillAlert(env, o.run.kind, false, [error]);
  }
  return orphans.length;
}

async function drillAlert(env: Env, kind: string, passed: boolean, errors: string[]) {
  await setAlert(env, { key: `drill_failed:${kind}`, kind: "drill_failed", source: kind, summary: passed ? "the last drill passed" : summarise(errors) }, !passed);
}

const summarise = (errors: string[]) => `${errors[0] ?? "failed"}${errors.length > 1 ? ` (and ${errors.length - 1} more)` : ""}`;

/**
 * The data a real recovery at the drill's start would have lost, in seconds:
 * per domain from the newest canary found in the restored data (DR_CANARY) or
 * else from when the restore point was taken; the drill reports the worst.
 */
function dataLoss(job: JobRow, domains: DomainResult[]): number | null {
  const start = Date.parse(job.created_at);
  const losses = domains.map((d) => {
    const canary = d.details?.newest_canary;
    const point = typeof canary === "string" ? canary : d.point_created_at;
    if (!point) return undefined;
    const loss = Math.max(0, Math.round((start - Date.parse(point)) / 1000));
    d.details = { ...d.details, data_loss_seconds: loss, data_loss_measured_by: typeof canary === "string" ? "canary" : "restore_point" };
    return loss;
  }).filter((n): n is number => n !== undefined);
  return losses.length ? Math.max(...losses) : null;
}
