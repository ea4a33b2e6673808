// A drill's end: the runner's half reports (databases, ML), then the Worker
// proves the parts it owns (storage into a scratch prefix, the catalog rebuilt
// from R2), and the whole is judged: passed only if every domain and source
// passed. The run is recorded in dr_runs, the job settled, the drill alert
// fired or resolved, and a passed scheduled drill pings the dead-man's switch.
import type { JobRow } from "../catalog/schema.ts";
import type { CompletionContext, KindContext } from "../jobs/kind.ts";
import type { DomainResult, DrillParams, DrillResult } from "./protocol.ts";
import { pingDeadman, setAlert } from "./alerts.ts";
import { drillCatalog } from "./catalog-check.ts";
import { openDrStore } from "./runs.ts";
import { drSettings } from "./settings.ts";
import { drillStorage } from "./storage-check.ts";
import { drillReplica } from "./replica-check.ts";
import { drillOverwrite } from "./overwrite-check.ts";

export async function completeDrill(c: CompletionContext<DrillParams, DrillResult>): Promise<void> {
  const { env, config, catalog, job, now, outcome } = c;
  const p = c.params;
  const settings = drSettings(config);
  const domains: DomainResult[] = [];
  const errors: string[] = [];
  if (outcome.status === "failed") errors.push(`runner: ${outcome.error.code}: ${outcome.error.message}`);
  if (outcome.result) domains.push(...outcome.result.domains);
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
  const result = { kind: "dr.drill", passed, domains, swept: outcome.result?.swept ?? [], data_loss_seconds: dataLoss(job, domains) };
  await openDrStore(env.CATALOG).finishRun(job.id, {
    status: passed ? "passed" : "failed", finished_at: finished.toISOString(), results: domains, data_loss_seconds: result.data_loss_seconds, errors,
  });
  if (passed) await catalog.succeedJob(job.id, result, now);
  else await catalog.failJob(job.id, { code: "drill_failed", message: summarise(errors) }, now, result);
  await drillAlert(c, p.scenario ? `scenario:${p.scenario.name}` : "drill", passed, errors);
  if (passed && p.trigger === "scheduled") await pingDeadman(c);
}

/** A drill whose job ended without a report (runner lost, dispatch gave up): failed, with the job's reason. */
export async function settleOrphanedRuns(ctx: KindContext): Promise<number> {
  const store = openDrStore(ctx.env.CATALOG);
  const orphans = await store.orphanedRuns();
  for (const o of orphans) {
    const error = `${o.error_code ?? "failed"}: ${o.error_message ?? "the job ended without a report"}`;
    await store.finishRun(o.run.id, { status: "failed", finished_at: o.finished_at ?? new Date().toISOString(), results: [], data_loss_seconds: null, errors: [error] });
    await drillAlert(ctx, o.run.kind, false, [error]);
  }
  return orphans.length;
}

async function drillAlert(ctx: KindContext, kind: string, passed: boolean, errors: string[]) {
  await setAlert(ctx, { key: `drill_failed:${kind}`, kind: "drill_failed", source: kind, summary: passed ? "the last drill passed" : summarise(errors) }, !passed);
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
