// training_data.backup (ASTR-112's backup_training_data(dataset_id)): an
// immutable snapshot of a dataset named in the config. Database tables and
// queries are streamed as CSV (COPY ... TO STDOUT) inside one REPEATABLE READ
// transaction, so all parts see the same instant; each part is a
// blob with its SHA-256 and the snapshot's digest covers them all. The
// snapshot is linked to the MLflow runs whose dataset inputs name the dataset.
import type { TrainingDataset } from "../../workers/shared/protocol.ts";
import type { MlBackupResult, TrainingDataDispatch } from "../../workers/ml/protocol.ts";
import { columnTypes, PgWire, quoteIdent } from "../database/pg-wire.ts";
import type { RepositoryClient } from "../repository/client.ts";
import { AppError } from "../../workers/shared/errors.ts";
import type { JobContext } from "../job-context.ts";
import { BlobWriter, writeMlManifest } from "./blobs.ts";
import { MlflowClient } from "./mlflow-client.ts";

export async function backupTrainingData(job: TrainingDataDispatch, ctx: JobContext): Promise<MlBackupResult> {
  const started = new Date();
  const def = job.definition;
  const repo = ctx.repository;
  const store = new BlobWriter(repo, job);
  await store.knowParent(job.parent_manifest_key);
  const counts = { tables: 0, queries: 0, r2_objects: 0, bytes: 0, linked_runs: 0 };
  if (def.tables.length + def.queries.length > 0) {
    if (!job.database_url) throw new AppError("database_not_configured", `dataset ${job.dataset} reads database "${def.database}", which has no URL`);
    await exportParts(job.database_url, def, store, ctx, counts);
  }
  await backupR2Prefixes(repo, store, def.r2_prefixes, counts);
  const linked = job.mlflow ? await runsUsing(new MlflowClient(job.mlflow), job.dataset) : [];
  counts.linked_runs = linked.length;
  return writeMlManifest(repo, store, {
    format: "astrid-backup/training-data", backup_id: job.backup_id, source: job.dataset, scope: { dataset: job.dataset, definition: def },
    counts, linked_runs: linked,
  }, job, started, "training_data.backup");
}

/**
 * R2 prefixes of a dataset: every object under each prefix becomes a blob
 * ("r2_object", named "<bucket>/<key>"), chunked, deduplicated and encrypted
 * like every other part, so the snapshot's digest covers it too. Objects are
 * read through the Worker (the runner holds no R2 credentials), each pinned to
 * the etag it was listed with: one rewritten meanwhile fails the job rather
 * than mixing two moments.
 */
export async function backupR2Prefixes(
  repo: RepositoryClient, store: BlobWriter, prefixes: TrainingDataset["r2_prefixes"], counts: { r2_objects: number; bytes: number },
): Promise<void> {
  for (const { bucket, prefix } of prefixes) {
    for await (const page of repo.listSource(bucket, prefix)) {
      for (const object of page) {
        const body = await repo.openSource(bucket, object);
        await store.stream({ kind: "r2_object", name: `${bucket}/${object.key}`, path: object.key }, body, (n) => (counts.bytes += n));
        counts.r2_objects += 1;
      }
    }
  }
}

/**
 * Every table and query, each COPY'd as CSV inside one REPEATABLE READ READ
 * ONLY transaction on one connection, so all parts show the same instant.
 * Through the wire-protocol client (pg-wire.ts): a dataset query runs as one
 * SQL statement and nothing else. Each part records its columns and types,
 * so a restore can create the table.
 */
async function exportParts(url: string, def: TrainingDataset, store: BlobWriter, ctx: JobContext, counts: { tables: number; queries: number; bytes: number }) {
  const db = await PgWire.connect(url);
  ctx.onCancel(() => void db.close());
  try {
    await db.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    const parts = [
      ...def.tables.map((t) => ({ kind: "table" as const, name: t, select: `SELECT * FROM ${t.split(".").map(quoteIdent).join(".")}` })),
      ...def.queries.map((q) => ({ kind: "query" as const, name: q.name, select: q.sql.replace(/;\s*$/, "") })),
    ];
    for (const part of parts) {
      const columns = await columnTypes(db, await db.describe(part.select));
      await store.stream({ kind: part.kind, name: part.name, columns }, db.copyOut(`COPY (${part.select}) TO STDOUT WITH (FORMAT csv, HEADER)`), (n) => {
        counts.bytes += n;
        ctx.progress({ phase: `copying ${part.kind} ${part.name}`, bytes: counts.bytes, chunks: 0 });
      });
      counts[part.kind === "table" ? "tables" : "queries"]++;
    }
    await db.query("COMMIT");
  } catch (e) {
    throw db.asAppError(e);
  } finally {
    await db.close();
  }
}

/** The runs (in all active experiments) whose dataset inputs name the dataset. */
async function runsUsing(mlflow: MlflowClient, dataset: string) {
  const out: { run_id: string; experiment_id: string; dataset_digest?: string }[] = [];
  const experiments: string[] = [];
  for await (const page of mlflow.pages<any>("POST", "experiments/search", "experiments", { max_results: 1000 })) experiments.push(...page.map((e) => e.experiment_id));
  for (let i = 0; i < experiments.length; i += 100) {
    const filter = `dataset.name = '${dataset}'`;
    for await (const page of mlflow.pages<any>("POST", "runs/search", "runs", { experiment_ids: experiments.slice(i, i + 100), filter, max_results: 1000 })) {
      for (const run of page) {
        const input = (run.inputs?.dataset_inputs ?? []).find((d: any) => d.dataset?.name === dataset);
        out.push({ run_id: run.info.run_id, experiment_id: run.info.experiment_id, ...(input?.dataset?.digest ? { dataset_digest: input.dataset.digest } : {}) });
      }
    }
  }
  return out.sort((a, b) => a.run_id.localeCompare(b.run_id));
}
