// Restores: a backup of any domain or a storage snapshot into a target, and
// a database as of a time or LSN (continuous archiving).
import type { Command } from "../context.ts";
import { WAIT_OPTION } from "../context.ts";
import { ApiError, CliError, EXIT, UsageError } from "../errors.ts";
import { findBackup } from "./backups.ts";
import { finishStarted } from "../wait.ts";
import type { OptionValues } from "../context.ts";

/** An option that means nothing for this kind of restore is a mistake worth saying, not something to drop silently. */
function refuse(values: OptionValues, names: string[], what: string): void {
  const given = names.filter((n) => values[n] !== undefined);
  if (given.length) throw new UsageError(`${given.map((n) => `--${n}`).join(", ")}: not for ${what}`);
}

export const restore: Command = {
  name: "restore",
  summary: "Restore a backup or storage snapshot into a target (a job); never over a non-empty target without --replace",
  usage: "<backup-id|snapshot-id> --target <database|postgres-url|mlflow-server|url|bucket> [--replace] [--experiment <id>]... "
    + "[--bucket <b>] [--prefix <p>] [--key <k>] [--dry-run] [--wait]",
  positionals: { min: 1, max: 1 },
  options: {
    target: { type: "string" }, replace: { type: "boolean" }, experiment: { type: "string", multiple: true },
    bucket: { type: "string" }, prefix: { type: "string" }, key: { type: "string" }, "dry-run": { type: "boolean" }, ...WAIT_OPTION,
  },
  async run(ctx, { positionals, values }) {
    const id = positionals[0]!;
    const target = values.target as string | undefined;
    const wait = { wait: Boolean(values.wait), describe: `restore ${id}${target ? ` -> ${target.includes("://") ? "(url)" : target}` : ""}` };
    const found = await findBackup(ctx, id);
    if (found.kind === "snapshot") {
      refuse(values, ["experiment", "bucket"], "a storage snapshot (--target names the bucket)");
      // A snapshot goes back into its own bucket unless --target names another; --replace overwrites objects that differ.
      const answer = await ctx.api.call("post", "/backup/storage/{id}/restore", {
        params: { id },
        body: {
          ...(target ? { target_bucket: target } : {}), ...(values.prefix !== undefined ? { prefix: values.prefix as string } : {}),
          ...(values.key !== undefined ? { key: values.key as string } : {}), overwrite: Boolean(values.replace), dry_run: Boolean(values["dry-run"]),
        },
      });
      return finishStarted(ctx, answer, [answer], wait);
    }
    const { backup } = found;
    let body;
    if (backup.domain === "database") {
      refuse(values, ["experiment", "bucket", "prefix", "key", "dry-run"], "a database backup");
      if (!target) throw new UsageError("--target: a configured database name or a postgres:// URL");
      body = { target, replace: Boolean(values.replace) };
    } else if (backup.domain === "ml") {
      refuse(values, ["replace", "bucket", "prefix", "key", "dry-run"], "an ML backup");
      if (!target) throw new UsageError("--target: a configured MLflow server name or an http(s) tracking URI");
      const experiments = values.experiment as string[] | undefined;
      // A tracking URI's token comes from the environment, never the command line.
      const token = process.env.ASTRID_TARGET_TOKEN;
      body = { target, ...(experiments?.length ? { experiment_ids: experiments } : {}), ...(token && /^https?:/i.test(target) ? { target_token: token } : {}) };
    } else {
      refuse(values, ["replace", "experiment", "key", "dry-run"], "a training-data snapshot");
      if (!target && !values.bucket) throw new UsageError("--target (a database) and/or --bucket (an R2 bucket) for a training-data snapshot");
      body = {
        ...(target ? { target } : {}), ...(values.bucket ? { bucket: values.bucket as string } : {}),
        ...(values.prefix !== undefined ? { prefix: values.prefix as string } : {}),
      };
    }
    const answer = await ctx.api.call("post", "/backups/{id}/restore", { params: { id }, body });
    return finishStarted(ctx, answer, [answer], wait);
  },
};

/**
 * The contract of POST /backups/restore-pitr (continuous archiving; built
 * beside this CLI): {database, target_time | target_lsn, target, replace?},
 * answered like every job start. Called through callPending until the route
 * is in the OpenAPI document this CLI's types come from.
 */
export interface PitrRequest {
  database: string;
  target_time?: string;
  target_lsn?: string;
  target: string;
  replace?: boolean;
}
export const RESTORE_PITR_PATH = "/backups/restore-pitr";

export const restorePitr: Command = {
  name: "restore-pitr",
  summary: "Restore a database as it was at a time or WAL position, from its base backup and archived WAL (a job)",
  usage: "--database <name> (--time <iso-8601> | --lsn <X/Y>) --target <database|postgres-url> [--replace] [--wait]",
  options: { database: { type: "string" }, time: { type: "string" }, lsn: { type: "string" }, target: { type: "string" }, replace: { type: "boolean" }, ...WAIT_OPTION },
  async run(ctx, { values }) {
    const database = values.database as string | undefined;
    const time = values.time as string | undefined;
    const lsn = values.lsn as string | undefined;
    const target = values.target as string | undefined;
    if (!database) throw new UsageError("--database: the source database");
    if (!target) throw new UsageError("--target: a configured database name or a postgres:// URL");
    if ((time === undefined) === (lsn === undefined)) throw new UsageError("give exactly one of --time and --lsn");
    if (time !== undefined && Number.isNaN(Date.parse(time))) throw new UsageError("--time: an ISO 8601 time, e.g. 2026-11-27T14:05:00Z");
    if (lsn !== undefined && !/^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/.test(lsn)) throw new UsageError("--lsn: a WAL position such as 0/3000060");
    const request: PitrRequest = {
      database, target, ...(time !== undefined ? { target_time: new Date(time).toISOString() } : {}), ...(lsn !== undefined ? { target_lsn: lsn } : {}),
      ...(values.replace ? { replace: true } : {}),
    };
    let answer;
    try {
      answer = await ctx.api.callPending("post", RESTORE_PITR_PATH, request);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404 && e.code === "not_found" && /no route/.test(e.message)) {
        throw new CliError("this API has no point-in-time restore (POST /backups/restore-pitr): continuous archiving is not deployed", EXIT.notFound);
      }
      throw e;
    }
    const started = answer as { job_id?: unknown; status?: unknown };
    if (typeof started.job_id !== "string" || typeof started.status !== "string") throw new CliError("restore-pitr: the API's answer names no job", EXIT.failed);
    return finishStarted(ctx, answer, [{ job_id: started.job_id, status: started.status }], { wait: Boolean(values.wait), describe: `restore ${database} as of ${time ?? lsn}` });
  },
};
