// training_data.restore: a training-data snapshot brought back. Its tables
// and queries become tables of a target database (created from the column
// types the snapshot recorded, filled with COPY FROM STDIN, all in one
// transaction, so a failure leaves nothing behind); its R2 objects are
// written under a target bucket and prefix through the Worker. Then every
// part is read back from where it went, hashed, and the snapshot's digest
// recomputed from those hashes: a restore that does not reproduce the
// dataset's digest fails.
import { pinnedPostgresUrl } from "../target-address.ts";
import { createHash } from "node:crypto";
import { mlDigestInput, type MlBlob } from "../../workers/shared/format.ts";
import type { TrainingDataRestoreDispatch, TrainingDataRestoreResult } from "../../workers/ml/protocol.ts";
import { PgWire, quoteIdent } from "../database/pg-wire.ts";
import { RepositoryClient } from "../repository/client.ts";
import { chunkOpener, sha256Hex } from "../repository/codec.ts";
import { AppError } from "../../workers/shared/errors.ts";
import type { JobContext } from "../job-context.ts";
import { blobBytes, readMlManifest } from "./blobs.ts";

export async function restoreTrainingData(job: TrainingDataRestoreDispatch, ctx: JobContext): Promise<TrainingDataRestoreResult> {
  const started = Date.now();
  const repo = new RepositoryClient(job.repository);
  const manifest = await readMlManifest(repo, job.manifest_key);
  if (manifest.format !== "astrid-backup/training-data") throw new AppError("wrong_backup_kind", `${job.backup_id} is an MLflow backup, not a training-data snapshot`);
  const open = chunkOpener(job.identities, job.chunk_id_key);
  const parts = manifest.blobs.filter((b) => b.kind === "table" || b.kind === "query");
  const objects = manifest.blobs.filter((b) => b.kind === "r2_object");
  if (parts.length && !job.target_url) throw new AppError("target_missing", `${job.backup_id} has ${parts.length} table(s) or query result(s): give a target database`);
  if (objects.length && job.bucket === undefined) throw new AppError("target_missing", `${job.backup_id} has ${objects.length} R2 object(s): give a target bucket`);
  const result: TrainingDataRestoreResult = {
    kind: "training_data.restore", backup_id: job.backup_id, target: job.target_label, tables: [], r2_objects: 0, bytes: 0, digest: "", duration_ms: 0,
  };
  const readBack: Pick<MlBlob, "kind" | "name" | "sha256">[] = [];
  const read = (b: MlBlob) => {
    const stream = blobBytes(repo, manifest, b, open);
    return (async function* () {
      for await (const part of stream) {
        result.bytes += part.length;
        ctx.progress({ phase: `restoring ${b.kind} ${b.name}`, bytes: result.bytes, chunks: 0 });
        yield part;
      }
    })();
  };

  if (parts.length) {
    const db = await PgWire.connect(await pinnedPostgresUrl(job.target_url!, job.target_policy));
    ctx.onCancel(() => void db.close());
    try {
      await db.query("BEGIN");
      const made: { blob: MlBlob; table: string }[] = [];
      for (const b of parts) {
        if (!b.columns?.length) throw new AppError("columns_unknown", `${b.kind} ${b.name} was snapshotted before column types were recorded; restore its CSV by hand (docs/ml.md)`);
        const table = targetTable(b, job.schema);
        for (const c of b.columns) if (!SQL_TYPE.test(c.type)) throw new AppError("manifest_invalid", `${b.kind} ${b.name}: column ${c.name} has type ${JSON.stringify(c.type)}, not a type name`);
        if (table.schema) await db.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(table.schema)}`);
        await db.query(`CREATE TABLE ${table.sql} (${b.columns.map((c) => `${quoteIdent(c.name)} ${c.type}`).join(", ")})`);
        const rows = await db.copyIn(`COPY ${table.sql} FROM STDIN WITH (FORMAT csv, HEADER)`, read(b));
        result.tables.push({ part: `${b.kind} ${b.name}`, table: table.label, rows });
        made.push({ blob: b, table: table.sql });
      }
      await db.query("COMMIT");
      // Read back: the same COPY the snapshot took must give the same bytes.
      for (const { blob, table } of made) {
        const hash = createHash("sha256");
        for await (const part of db.copyOut(`COPY (SELECT * FROM ${table}) TO STDOUT WITH (FORMAT csv, HEADER)`)) hash.update(part);
        readBack.push({ kind: blob.kind, name: blob.name, sha256: hash.digest("hex") });
      }
    } catch (e) {
      await db.query("ROLLBACK").catch(() => {});
      if (/already exists/.test((e as Error).message)) throw new AppError("table_exists", `${(e as Error).message}: restore into another schema ("schema") or database`);
      throw db.asAppError(e);
    } finally {
      await db.close();
    }
  }

  for (const b of objects) {
    const key = `${job.prefix ?? ""}${b.path ?? b.name.slice(b.name.indexOf("/") + 1)}`;
    await repo.putTarget(job.bucket!, key, b.size, () => read(b));
    const hash = createHash("sha256");
    for await (const part of await repo.openTarget(job.bucket!, key)) hash.update(part);
    readBack.push({ kind: b.kind, name: b.name, sha256: hash.digest("hex") });
    result.r2_objects++;
  }

  result.digest = sha256Hex(Buffer.from(mlDigestInput(readBack)));
  if (result.digest !== manifest.digest) {
    const differing = readBack.filter((r) => manifest.blobs.find((b) => b.kind === r.kind && b.name === r.name)?.sha256 !== r.sha256).map((r) => `${r.kind} ${r.name}`);
    throw new AppError("digest_mismatch", `restored data reads back with digest ${result.digest}, the snapshot's is ${manifest.digest} (differs: ${differing.join(", ") || "the set of parts"})`);
  }
  result.duration_ms = Date.now() - started;
  return result;
}

/** What format_type() prints ("numeric(10,2)", "character varying(5)", "timestamp with time zone", "integer[]", "public.mood"): no ";" or comment can pass. */
const SQL_TYPE = /^[A-Za-z_"][A-Za-z0-9_ .,()\[\]"]*$/;

/** Where a part goes: a table keeps its name (in `schema` if given), a query result becomes a table named after the query. */
function targetTable(b: MlBlob, schema: string | undefined): { schema?: string; sql: string; label: string } {
  const [own, name] = b.kind === "table" && b.name.includes(".") ? b.name.split(".") as [string, string] : [undefined, b.name];
  const s = schema ?? own ?? "public";
  return { schema: s === "public" ? undefined : s, sql: `${quoteIdent(s)}.${quoteIdent(name)}`, label: `${s}.${name}` };
}
