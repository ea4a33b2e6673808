// The table_dropped scenario on a scratch copy: the table is dropped there
// (the disaster), then brought back from the backup alone with
// `pg_restore -n schema -t table` (the runbook's recovery: one table out of a
// whole-database dump, the feature pgBackRest's users ask for most), and its
// rows must match the backup's consistency record again.
import { spawn } from "node:child_process";
import type { ConsistencyRecord } from "../../workers/shared/format.ts";
import type { ReadManifest } from "../database/manifest.ts";
import type { DrillDispatch } from "../../workers/dr/protocol.ts";
import type { JobContext } from "../job-context.ts";
import { compareFingerprints, fingerprintDatabase, recordedFingerprints } from "../database/consistency.ts";
import { feed } from "../database/feed.ts";
import { classifyPgError, exitOf, psql, stderrTail, toolEnv } from "../database/pg-tools.ts";
import { dumpStream } from "../database/plaintext.ts";
import { AppError } from "../../workers/shared/errors.ts";

export interface Step { name: string; ms: number; ok: boolean; detail?: string }

/** The table asked for, or the backup's largest table. */
export function pickTable(record: ConsistencyRecord | undefined, asked: string): string {
  if (asked) return asked;
  const tables = Object.entries(record?.tables ?? {}).filter(([k]) => !k.includes(":")).sort((a, b) => b[1].rows - a[1].rows);
  if (!tables[0]) throw new AppError("no_table", "the backup has no consistency record naming a table; give one");
  return tables[0][0];
}

const ident = (s: string) => `"${s.replace(/"/g, '""')}"`;

export async function dropAndRestoreTable(
  job: DrillDispatch, ctx: JobContext, manifest: ReadManifest, scratchUrl: string, asked: string, problems: string[],
): Promise<Step[]> {
  const steps: Step[] = [];
  const table = pickTable(manifest.consistency, asked);
  const [schema, name] = table.includes(".") ? table.split(".", 2) as [string, string] : ["public", table];
  let t = Date.now();
  await psql(scratchUrl, `DROP TABLE ${ident(schema)}.${ident(name)} CASCADE`);
  steps.push({ name: `simulate: DROP TABLE ${table}`, ms: Date.now() - t, ok: true });

  t = Date.now();
  const restore = spawn("pg_restore", ["--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error", "-n", schema, "-t", name, `--dbname=${new URL(scratchUrl).pathname.slice(1)}`], {
    env: toolEnv(scratchUrl), stdio: ["pipe", "ignore", "pipe"],
  });
  const exited = exitOf(restore);
  const tail = stderrTail(restore);
  const dump = dumpStream(ctx.repository, manifest, job.identities);
  await feed(restore, dump, true, (piece) => dump.release(piece));
  const { code } = await exited;
  if (code !== 0) throw classifyPgError("pg_restore", tail(), scratchUrl);
  steps.push({ name: `recover: pg_restore -n ${schema} -t ${name} from the backup`, ms: Date.now() - t, ok: true });

  t = Date.now();
  const recorded = manifest.consistency && recordedFingerprints(manifest.consistency);
  const expected = recorded?.tables[table];
  const found = (await fingerprintDatabase(scratchUrl, recorded?.method))[table];
  const mismatch = expected ? compareFingerprints({ [table]: expected }, found ? { [table]: found } : {}) : found ? [] : [`table ${table}: not restored`];
  problems.push(...mismatch);
  steps.push({ name: `validate: ${table} rows and checksum equal the backup's`, ms: Date.now() - t, ok: mismatch.length === 0, ...(found ? { detail: `${found.rows} rows` } : {}) });
  return steps;
}
