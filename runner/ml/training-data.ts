// training_data.backup (ASTR-112's backup_training_data(dataset_id)): an
// immutable snapshot of a dataset named in the config. Database tables and
// queries are streamed as CSV (COPY ... TO STDOUT) from one exported
// PostgreSQL snapshot, so all parts see the same instant; each part is a
// blob with its SHA-256 and the snapshot's digest covers them all. The
// snapshot is linked to the MLflow runs whose dataset inputs name the dataset.
import { spawn } from "node:child_process";
import type { TrainingDataset } from "../../workers/shared/protocol.ts";
import type { MlBackupResult, TrainingDataDispatch } from "../../workers/ml/protocol.ts";
import { classifyPgError, exitOf, stderrTail, toolEnv } from "../database/pg-tools.ts";
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

const quoteIdent = (s: string) => `"${s.replace(/"/g, '""')}"`;

/** Every table and query, each COPY'd as CSV inside one exported snapshot. */
async function exportParts(url: string, def: TrainingDataset, store: BlobWriter, ctx: JobContext, counts: { tables: number; queries: number; bytes: number }) {
  const holder = spawn("psql", ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"], { env: toolEnv(url), stdio: ["pipe", "pipe", "pipe"] });
  const holderExit = exitOf(holder);
  const holderErr = stderrTail(holder);
  ctx.onCancel(() => holder.kill("SIGTERM"));
  try {
    holder.stdin.write("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\nSELECT pg_export_snapshot();\n");
    const snapshot = await firstLine(holder.stdout, holderExit).catch(() => {
      throw classifyPgError("psql", holderErr(), url);
    });
    const parts = [
      ...def.tables.map((t) => ({ kind: "table" as const, name: t, sql: `COPY ${t.split(".").map(quoteIdent).join(".")} TO STDOUT WITH (FORMAT csv, HEADER)` })),
      ...def.queries.map((q) => ({ kind: "query" as const, name: q.name, sql: `COPY (${q.sql.replace(/;\s*$/, "")}) TO STDOUT WITH (FORMAT csv, HEADER)` })),
    ];
    for (const part of parts) {
      const copy = spawn("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"], { env: toolEnv(url), stdio: ["pipe", "pipe", "pipe"] });
      const exited = exitOf(copy);
      const tail = stderrTail(copy);
      copy.stdin.end(`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\nSET TRANSACTION SNAPSHOT '${snapshot}';\n${part.sql};\nCOMMIT;\n`);
      try {
        await store.stream({ kind: part.kind, name: part.name }, copy.stdout, (n) => {
          counts.bytes += n;
          ctx.progress({ phase: `copying ${part.kind} ${part.name}`, bytes: counts.bytes, chunks: 0 });
        });
      } catch (e) {
        copy.kill("SIGTERM");
        throw e;
      }
      const { code } = await exited;
      if (code !== 0) throw classifyPgError("psql", tail(), url);
      counts[part.kind === "table" ? "tables" : "queries"]++;
    }
  } finally {
    holder.stdin.end("COMMIT;\n");
    await holderExit.catch(() => {});
  }
}

function firstLine(stream: NodeJS.ReadableStream, exited: Promise<unknown>): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    const onData = (d: Buffer) => {
      text += d.toString("utf8");
      const line = text.split("\n").find((l) => l.trim() !== "");
      if (line && text.includes("\n")) {
        stream.off("data", onData);
        resolve(line.trim());
      }
    };
    stream.on("data", onData);
    exited.then(() => reject(new Error("psql exited")), reject);
  });
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
