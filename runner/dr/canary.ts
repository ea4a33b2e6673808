// DR_CANARY: measured data loss. The canary writer puts a timestamped row
// into astrid_dr_canary.canary of each source database every few minutes; a
// drill looks for the newest canary in what it restored, and the time from
// that canary to the drill's start is the data a real recovery would lose.
import type { CanaryDispatch, CanaryResult } from "../../workers/dr/protocol.ts";
import { psql } from "../database/pg-tools.ts";
import { scrub } from "../failure.ts";
import { AppError } from "../../workers/shared/errors.ts";
import { psqlScript } from "../database/consistency.ts";

export const CANARY_TABLE = "astrid_dr_canary.canary";

/** The newest canary's time (ISO) in a database, or undefined when it has none. */
export async function findCanary(url: string): Promise<string | undefined> {
  if ((await psql(url, `SELECT to_regclass('${CANARY_TABLE}') IS NOT NULL`)) !== "t") return undefined;
  const newest = await psql(url, `SELECT to_char(max(written_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') FROM ${CANARY_TABLE}`);
  return newest || undefined;
}

/** Writes one canary row (creating the schema and table on first use). */
export async function writeCanary(url: string): Promise<string> {
  return (await psqlScript(url, `CREATE SCHEMA IF NOT EXISTS astrid_dr_canary;
    CREATE TABLE IF NOT EXISTS ${CANARY_TABLE} (written_at timestamptz PRIMARY KEY DEFAULT clock_timestamp());
    INSERT INTO ${CANARY_TABLE} DEFAULT VALUES RETURNING to_char(written_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`)).trim();
}

/** dr.canary: one canary into every source database; a database that refuses is reported, the others still get theirs. */
export async function writeCanaries(job: CanaryDispatch): Promise<CanaryResult> {
  const result: CanaryResult = { kind: "dr.canary", written: [] };
  const problems: string[] = [];
  for (const d of job.databases) {
    try {
      result.written.push({ database: d.database, at: await writeCanary(d.database_url) });
    } catch (e) {
      problems.push(`${d.database}: ${scrub((e as Error).message, [d.database_url])}`);
    }
  }
  if (problems.length) throw new AppError("canary_failed", `${result.written.length} canaries written; ${problems.join("; ")}`);
  return result;
}
