// Backups: list, show one, take one (database, storage, ml), verify one.
import type { Command, Context, OptionValues } from "../context.ts";
import { printJson, WAIT_OPTION } from "../context.ts";
import { ApiError, UsageError } from "../errors.ts";
import type { Answer } from "../http.ts";
import { formatAge, formatBytes, formatDuration, formatTime, renderFields, renderTable } from "../table.ts";
import { finishStarted } from "../wait.ts";

const DOMAINS = ["database", "ml", "training_data", "storage"] as const;

function limitOf(v: OptionValues): number | undefined {
  if (v.limit === undefined) return undefined;
  const n = Number(v.limit);
  if (!Number.isInteger(n) || n < 1) throw new UsageError("--limit: a whole number from 1");
  return n;
}

function oneOf<T extends string>(name: string, value: unknown, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!allowed.includes(value as T)) throw new UsageError(`--${name}: one of ${allowed.join(", ")}`);
  return value as T;
}

type BackupRow = Answer<"/backup/ml", "get">["backups"][number] & { type?: string };

const backupColumns = (now: number) => [
  { header: "BACKUP", value: (b: BackupRow) => b.backup_id },
  { header: "SOURCE", value: (b: BackupRow) => b.source },
  { header: "TYPE", value: (b: BackupRow) => b.type ?? b.domain },
  { header: "CREATED", value: (b: BackupRow) => formatAge(b.created_at, now) },
  { header: "SIZE", value: (b: BackupRow) => formatBytes(b.logical_bytes), align: "right" as const },
  { header: "STORED", value: (b: BackupRow) => formatBytes(b.stored_bytes), align: "right" as const },
  { header: "NEW", value: (b: BackupRow) => formatBytes(b.new_stored_bytes), align: "right" as const },
  { header: "STATUS", value: (b: BackupRow) => b.status },
  { header: "VERIFIED", value: (b: BackupRow) => (b.verify_status ? `${b.verify_status} (${b.verify_depth}) ${formatAge(b.verified_at, now)}` : "-") },
];

export const backupsList: Command = {
  name: "backups list",
  summary: "List backups, newest first (database by default; --domain ml, training_data or storage)",
  usage: "[--domain database|ml|training_data|storage] [--source <name>] [--status completed|corrupt] [--limit <n>] [--cursor <c>]",
  options: { domain: { type: "string" }, source: { type: "string" }, status: { type: "string" }, limit: { type: "string" }, cursor: { type: "string" } },
  async run(ctx, { values }) {
    const domain = oneOf("domain", values.domain, DOMAINS) ?? "database";
    const status = oneOf("status", values.status, ["completed", "corrupt"] as const);
    const limit = limitOf(values);
    const source = values.source as string | undefined;
    const cursor = values.cursor as string | undefined;
    const now = ctx.now();
    if (domain === "storage") {
      if (status || cursor) throw new UsageError("--status and --cursor do not apply to storage snapshots");
      const page = await ctx.api.call("get", "/backup/storage", { query: { ...(source ? { bucket: source } : {}), ...(limit ? { limit } : {}) } });
      if (ctx.json) return printJson(ctx, page);
      ctx.out(renderTable([
        { header: "SNAPSHOT", value: (s) => s.id },
        { header: "BUCKET", value: (s) => s.bucket },
        { header: "PREFIX", value: (s) => s.prefix || "-" },
        { header: "CREATED", value: (s) => formatAge(s.created_at, now) },
        { header: "OBJECTS", value: (s) => String(s.objects), align: "right" },
        { header: "SIZE", value: (s) => formatBytes(s.bytes), align: "right" },
        { header: "COPIED", value: (s) => formatBytes(s.copied_bytes), align: "right" },
      ], page.snapshots));
      return;
    }
    const common = { ...(status ? { status } : {}), ...(limit ? { limit } : {}), ...(cursor ? { cursor } : {}) };
    const page: { backups: BackupRow[]; next_cursor?: string } = domain === "database"
      ? await ctx.api.call("get", "/backup/database", { query: { ...common, ...(source ? { database: source } : {}) } })
      : await ctx.api.call("get", "/backup/ml", { query: { ...common, domain, ...(source ? { source } : {}) } });
    if (ctx.json) return printJson(ctx, page);
    ctx.out(renderTable(backupColumns(now), page.backups));
    if (page.next_cursor) ctx.note(`more: astrid-backup backups list --domain ${domain} --cursor ${page.next_cursor}`);
  },
};

/** A backup of any domain, or else a storage snapshot; 404 only when neither has the id. */
export async function findBackup(ctx: Context, id: string) {
  try {
    return { kind: "backup" as const, backup: await ctx.api.call("get", "/backups/{id}", { params: { id } }) };
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 404)) throw e;
  }
  try {
    return { kind: "snapshot" as const, snapshot: await ctx.api.call("get", "/backup/storage/{id}", { params: { id } }) };
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) throw new ApiError(404, "not_found", `no backup or storage snapshot ${id}`);
    throw e;
  }
}

export const backupsShow: Command = {
  name: "backups show",
  summary: "One backup (any domain) or storage snapshot",
  usage: "<backup-id|snapshot-id>",
  positionals: { min: 1, max: 1 },
  async run(ctx, { positionals }) {
    const found = await findBackup(ctx, positionals[0]!);
    if (ctx.json) return printJson(ctx, found.kind === "backup" ? found.backup : found.snapshot);
    const now = ctx.now();
    if (found.kind === "snapshot") {
      const s = found.snapshot;
      ctx.out(renderFields([
        ["snapshot", s.id], ["bucket", s.bucket], ["prefix", s.prefix || "(whole bucket)"], ["parent", s.parent_id ?? "-"],
        ["created", `${formatTime(s.created_at)} (${formatAge(s.created_at, now)})`], ["took", formatDuration(s.duration_ms)],
        ["objects", String(s.objects)], ["size", formatBytes(s.bytes)], ["copied", `${s.copied_objects} objects, ${formatBytes(s.copied_bytes)}`],
        ["manifest", s.manifest_key],
      ]));
      return;
    }
    const b = found.backup;
    ctx.out(renderFields([
      ["backup", b.backup_id], ["domain", b.domain], ["source", b.source], ["type", b.type], ["status", b.status],
      ["created", `${formatTime(b.created_at)} (${formatAge(b.created_at, now)})`], ["took", formatDuration(b.duration_ms)],
      ["size", formatBytes(b.logical_bytes)], ["stored", `${formatBytes(b.stored_bytes)} (${formatBytes(b.new_stored_bytes)} new)`], ["chunks", String(b.chunk_count)],
      ["verified", b.verified_at ? `${b.verify_status} (${b.verify_depth}) ${formatAge(b.verified_at, now)}` : "never"],
      ["verify detail", b.verify_detail],
      ["last restore", b.last_restore_ms !== undefined ? formatDuration(b.last_restore_ms) : undefined],
      ["sha256", b.sha256], ["manifest", b.manifest_key],
    ]));
  },
};

/** The previous backup's size, as the 100% of a new backup's bar (an estimate). */
async function previousSize(ctx: Context, database: string | undefined) {
  try {
    const page = await ctx.api.call("get", "/backup/database", { query: { limit: 1, ...(database ? { database } : {}) } });
    const last = page.backups[0];
    return last ? { bytes: last.logical_bytes, estimate: true } : undefined;
  } catch {
    return undefined;
  }
}

export const backupDatabase: Command = {
  name: "backup database",
  summary: "Back up a database (a job)",
  usage: "[--database <name>] [--type full|incremental|archive] [--wait]",
  options: { database: { type: "string" }, type: { type: "string" }, ...WAIT_OPTION },
  async run(ctx, { values }) {
    const type = oneOf("type", values.type, ["full", "incremental", "archive"] as const);
    const database = values.database as string | undefined;
    const answer = await ctx.api.call("post", "/backup/database", { body: { ...(type ? { type } : {}), ...(database ? { database } : {}) } });
    const hint = values.wait ? await previousSize(ctx, database) : undefined;
    return finishStarted(ctx, answer, [answer], { wait: Boolean(values.wait), ...(hint ? { hint } : {}), describe: `backup ${answer.backup_id}` });
  },
};

export const backupStorage: Command = {
  name: "backup storage",
  summary: "Snapshot R2 buckets (a job per bucket; every configured source by default)",
  usage: "[--bucket <name> [--prefix <p>]] [--wait]",
  options: { bucket: { type: "string" }, prefix: { type: "string" }, ...WAIT_OPTION },
  async run(ctx, { values }) {
    const bucket = values.bucket as string | undefined;
    const prefix = values.prefix as string | undefined;
    if (prefix !== undefined && !bucket) throw new UsageError("--prefix needs --bucket");
    const answer = await ctx.api.call("post", "/backup/storage", { body: { ...(bucket ? { bucket } : {}), ...(prefix !== undefined ? { prefix } : {}) } });
    return finishStarted(ctx, answer, answer.jobs, { wait: Boolean(values.wait), describe: "storage snapshot" });
  },
};

export const backupMl: Command = {
  name: "backup ml",
  summary: "Back up an MLflow server, or some of its experiments (a job)",
  usage: "[--server <name>] [--experiment <id>]... [--no-registry] [--include-deleted] [--wait]",
  options: {
    server: { type: "string" }, experiment: { type: "string", multiple: true }, "no-registry": { type: "boolean" }, "include-deleted": { type: "boolean" }, ...WAIT_OPTION,
  },
  async run(ctx, { values }) {
    const experiments = values.experiment as string[] | undefined;
    const answer = await ctx.api.call("post", "/backup/ml", {
      body: {
        ...(values.server ? { server: values.server as string } : {}),
        ...(experiments?.length ? { experiment_ids: experiments } : {}),
        ...(values["no-registry"] ? { registry: false } : {}),
        ...(values["include-deleted"] ? { include_deleted: true } : {}),
      },
    });
    return finishStarted(ctx, answer, [answer], { wait: Boolean(values.wait), describe: `backup ${answer.backup_id}` });
  },
};

export const verify: Command = {
  name: "verify",
  summary: "Verify a backup: quick (every chunk is there) or full (decrypt and check everything) (a job)",
  usage: "<backup-id> [--depth quick|full] [--wait]",
  positionals: { min: 1, max: 1 },
  options: { depth: { type: "string" }, ...WAIT_OPTION },
  async run(ctx, { positionals, values }) {
    const depth = oneOf("depth", values.depth, ["quick", "full"] as const);
    const answer = await ctx.api.call("post", "/backups/{id}/verify", { params: { id: positionals[0]! }, body: depth ? { depth } : {} });
    return finishStarted(ctx, answer, [answer], { wait: Boolean(values.wait), describe: `verify ${positionals[0]}` });
  },
};

export { limitOf, oneOf };
