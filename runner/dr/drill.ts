// dr.drill, the runner's half: every database's restore point goes into a
// fresh scratch database through the ordinary restore path, is compared with
// the consistency record taken at backup time (table by table, and the
// normalised schema), and the scratch database is dropped whatever happened.
// ML backups are restored into the scratch MLflow server through the ordinary
// ML restore and compared with their manifest. Storage and the catalog are
// checked by the Worker when this half reports (workers/dr/complete.ts).
//
// Before anything else the drill sweeps the drill servers for scratch
// databases that no running drill owns: what a killed drill left behind.
import { createHash } from "node:crypto";
import { DR_SCRATCH_PREFIX, type DomainResult, type DrillDispatch, type DrillResult } from "../../workers/dr/protocol.ts";
import type { MlManifest } from "../../workers/shared/format.ts";
import { restoreDatabase } from "../database/restore.ts";
import { readManifest } from "../database/manifest.ts";
import { pgEnv } from "../database/pg-env.ts";
import { psql } from "../database/pg-tools.ts";
import { restoreMl } from "../ml/restore.ts";
import { readMlManifest } from "../ml/blobs.ts";
import { MlflowClient } from "../ml/mlflow-client.ts";
import { scrub } from "../failure.ts";
import { AppError } from "../../workers/shared/errors.ts";
import { dispatchSecrets } from "../../workers/shared/protocol.ts";
import type { JobContext } from "../job-context.ts";
import { compareFingerprints, fingerprintDatabase, recordedFingerprints, schemaHash } from "../database/consistency.ts";
import { findCanary } from "./canary.ts";
import { dropAndRestoreTable } from "./table-restore.ts";

export async function runDrill(job: DrillDispatch, ctx: JobContext): Promise<DrillResult> {
  const started = Date.now();
  const secrets = dispatchSecrets(job);
  const swept = await sweepScratch(job.sweep.map((s) => s.database_url), job.keep_prefixes);
  const domains: DomainResult[] = [];
  for (const d of job.databases) domains.push(await drillDatabase(job, d, ctx, secrets));
  for (const m of job.ml) domains.push(await drillMl(job, m, ctx, secrets));
  return { kind: "dr.drill", domains, swept, duration_ms: Date.now() - started };
}

/** The maintenance database of the server a URL points at. */
export function maintenanceUrl(url: string): string {
  const u = new URL(url);
  u.pathname = "/postgres";
  return u.toString();
}

const quoteIdent = (name: string) => `"${name.replace(/"/g, '""')}"`;

export async function dropScratch(url: string): Promise<void> {
  const name = pgEnv(url).PGDATABASE ?? "";
  if (!name.startsWith(DR_SCRATCH_PREFIX)) throw new AppError("not_scratch", "refusing to drop a database that is not a drill's scratch database");
  await psql(maintenanceUrl(url), `DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
}

/** Drops every scratch database on the drill servers that no running drill owns; returns their names. */
export async function sweepScratch(urls: string[], keepPrefixes: string[]): Promise<string[]> {
  const swept: string[] = [];
  for (const url of urls) {
    let names: string[];
    try {
      names = (await psql(url, `SELECT datname FROM pg_database WHERE datname LIKE '${DR_SCRATCH_PREFIX.replace(/_/g, "\\_")}%'`)).split("\n").filter(Boolean);
    } catch (e) {
      console.warn(`scratch sweep: ${scrub((e as Error).message)}`);
      continue;
    }
    for (const name of names) {
      if (keepPrefixes.some((p) => name.startsWith(p))) continue;
      await psql(url, `DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
      swept.push(name);
    }
  }
  return swept;
}

const errorLine = (e: unknown, secrets: string[]) => {
  const code = (e as { code?: string }).code;
  return `${code ? `${code}: ` : ""}${scrub((e as Error)?.message ?? String(e), secrets)}`;
};

async function drillDatabase(job: DrillDispatch, d: DrillDispatch["databases"][number], ctx: JobContext, secrets: string[]): Promise<DomainResult> {
  const result: DomainResult = {
    domain: "database", source: d.database, restore_point: d.backup_id, passed: false, restore_ms: 0, validate_ms: 0, bytes: 0, problems: [],
  };
  const scratch = pgEnv(d.target_url).PGDATABASE ?? "";
  if (!scratch.startsWith(DR_SCRATCH_PREFIX)) {
    result.problems.push("the scratch database is not named as a drill's: refusing to restore into it");
    return result;
  }
  try {
    const manifest = await readManifest(ctx.repository, d.manifest_key);
    result.point_created_at = manifest.created_at;
    const t0 = Date.now();
    const restored = await restoreDatabase({
      kind: "database.restore", job_id: job.job_id, backup_id: d.backup_id, manifest_key: d.manifest_key, target_url: d.target_url,
      replace: false, identities: job.identities, repository: job.repository,
    }, ctx);
    result.restore_ms = Date.now() - t0;
    result.bytes = restored.bytes;
    ctx.progress({ phase: `validating ${d.database}`, bytes: restored.bytes, chunks: 0 });
    const t1 = Date.now();
    if (manifest.consistency) {
      // Computed the way the record was: records from before a method change still compare.
      const recorded = recordedFingerprints(manifest.consistency);
      const [tables, schema] = await Promise.all([fingerprintDatabase(d.target_url, recorded.method), schemaHash(d.target_url)]);
      result.problems.push(...compareFingerprints(recorded.tables, tables));
      if (schema !== manifest.consistency.schema_sha256) result.problems.push("schema: the restored schema (normalised schema-only dump) differs from the backup's");
      result.details = { tables_compared: Object.keys(manifest.consistency.tables).length };
    } else {
      // A backup from before consistency records: the restore itself is the only proof.
      const tables = await fingerprintDatabase(d.target_url);
      result.details = { tables_restored: Object.keys(tables).length, note: "backup has no consistency record: restored, not compared" };
    }
    const canary = await findCanary(d.target_url);
    if (canary) result.details = { ...result.details, newest_canary: canary };
    result.validate_ms = Date.now() - t1;
    if (job.drop_table !== undefined) {
      result.details = { ...result.details, steps: await dropAndRestoreTable(job, ctx, manifest, d.target_url, job.drop_table, result.problems) };
    }
  } catch (e) {
    result.problems.push(errorLine(e, secrets));
  } finally {
    await dropScratch(d.target_url).catch((e) => result.problems.push(`could not drop the scratch database: ${errorLine(e, secrets)}`));
  }
  result.passed = result.problems.length === 0;
  return result;
}

async function drillMl(job: DrillDispatch, m: DrillDispatch["ml"][number], ctx: JobContext, secrets: string[]): Promise<DomainResult> {
  const result: DomainResult = {
    domain: "ml", source: m.server, restore_point: m.backup_id, passed: false, restore_ms: 0, validate_ms: 0, bytes: 0, problems: [],
  };
  try {
    const manifest = await readMlManifest(ctx.repository, m.manifest_key);
    result.point_created_at = manifest.created_at;
    const t0 = Date.now();
    const restored = await restoreMl({
      kind: "ml.restore", job_id: job.job_id, backup_id: m.backup_id, manifest_key: m.manifest_key, target_label: "drill scratch MLflow",
      mlflow: m.mlflow, registry: true, identities: job.identities, repository: job.repository,
    }, ctx);
    result.restore_ms = Date.now() - t0;
    result.bytes = restored.artifact_bytes;
    const t1 = Date.now();
    const counts = manifest.counts;
    const got: Record<string, number> = {
      experiments: restored.experiments, runs: restored.runs_created + restored.runs_existing, artifacts: restored.artifacts,
      artifact_bytes: restored.artifact_bytes, registered_models: restored.registered_models, model_versions: restored.model_versions,
    };
    // A scratch server that already held these runs (an earlier drill) restores only what is new: then runs are
    // compared by count and artifacts by hash below, the other counts only on a fresh server.
    // Artifacts are proven one by one by their hashes (checkArtifacts), not by the restore's upload tally, which
    // also counts logged models' artifacts and an artifact uploaded again when a half-restored run is redone.
    const compared = restored.runs_existing > 0 ? ["runs"] : Object.keys(got).filter((k) => k !== "artifacts" && k !== "artifact_bytes");
    for (const k of compared) {
      if (counts[k] !== undefined && counts[k] !== got[k]) result.problems.push(`${k}: ${got[k]} restored, ${counts[k]} in the backup`);
    }
    result.problems.push(...(await checkArtifacts(new MlflowClient(m.mlflow), manifest, restored.run_id_map)));
    result.details = { counts: got, ...(restored.runs_existing > 0 ? { runs_already_on_scratch_server: restored.runs_existing } : {}) };
    result.validate_ms = Date.now() - t1;
  } catch (e) {
    result.problems.push(errorLine(e, secrets));
  }
  result.passed = result.problems.length === 0;
  return result;
}

/** Every artifact the backup holds, downloaded from its restored run, hashes to the manifest. */
async function checkArtifacts(mlflow: MlflowClient, manifest: MlManifest, runMap: Record<string, string>): Promise<string[]> {
  const problems: string[] = [];
  const uris = new Map<string, string>();
  for (const blob of manifest.blobs.filter((b) => b.kind === "artifact")) {
    const runId = runMap[blob.run_id ?? ""];
    if (!runId) {
      problems.push(`artifact ${blob.name}: its run was not restored`);
      continue;
    }
    if (!uris.has(runId)) uris.set(runId, (await mlflow.get("runs/get", { run_id: runId })).run.info.artifact_uri);
    const hash = createHash("sha256");
    try {
      for await (const part of await mlflow.download(`${uris.get(runId)}/${blob.path}`, `artifact ${blob.path} of restored run ${runId}`)) hash.update(part);
    } catch (e) {
      problems.push(`artifact ${blob.name}: ${(e as Error).message}`);
      continue;
    }
    if (hash.digest("hex") !== blob.sha256) problems.push(`artifact ${blob.name}: restored bytes do not hash to the manifest's SHA-256`);
  }
  return problems;
}
