// Maintenance: garbage collection and the catalog rebuild from R2.
import type { Command } from "../context.ts";
import { printJson, WAIT_OPTION } from "../context.ts";
import { EXIT, UsageError } from "../errors.ts";
import { finishStarted } from "../wait.ts";

export const gc: Command = {
  name: "gc",
  summary: "Garbage-collect unreferenced chunks (--storage: storage snapshot blobs) (a job)",
  usage: "[--storage] [--dry-run] [--grace-minutes <n>] [--wait]",
  options: { storage: { type: "boolean" }, "dry-run": { type: "boolean" }, "grace-minutes": { type: "string" }, ...WAIT_OPTION },
  async run(ctx, { values }) {
    let grace: number | undefined;
    if (values["grace-minutes"] !== undefined) {
      grace = Number(values["grace-minutes"]);
      if (!Number.isInteger(grace) || grace < 0) throw new UsageError("--grace-minutes: a whole number of minutes");
    }
    const body = { dry_run: Boolean(values["dry-run"]), ...(grace !== undefined ? { grace_minutes: grace } : {}) };
    const answer = values.storage
      ? await ctx.api.call("post", "/storage/gc", { body })
      : await ctx.api.call("post", "/repository/gc", { body });
    return finishStarted(ctx, answer, [answer], { wait: Boolean(values.wait), describe: `${values.storage ? "storage " : ""}gc${body.dry_run ? " (dry run)" : ""}` });
  },
};

export const catalogRebuild: Command = {
  name: "catalog rebuild",
  summary: "Rebuild the catalog's backup and snapshot rows from the manifests in R2; exit 1 if some manifest is unreadable or not authentic",
  usage: "[--limit <manifests per call>]",
  options: { limit: { type: "string" } },
  async run(ctx, { values }) {
    const limit = values.limit === undefined ? undefined : Number(values.limit);
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 1 || limit > 500)) throw new UsageError("--limit: 1 to 500");
    const total = { scanned: 0, restored: [] as string[], present: 0, invalid: [] as string[], unauthenticated: [] as string[] };
    let cursor: string | undefined;
    do {
      const page = await ctx.api.call("post", "/catalog/rebuild", { body: { ...(cursor ? { cursor } : {}), ...(limit ? { limit } : {}) } });
      total.scanned += page.scanned;
      total.restored.push(...page.restored);
      total.present += page.present;
      total.invalid.push(...page.invalid);
      total.unauthenticated.push(...page.unauthenticated);
      cursor = page.next_cursor;
      if (!ctx.json && cursor) ctx.note(`scanned ${total.scanned} manifests...`);
    } while (cursor);
    if (ctx.json) printJson(ctx, total);
    else {
      ctx.out(`manifests scanned: ${total.scanned}; rows restored: ${total.restored.length}; already listed: ${total.present}; unreadable or not authentic: ${total.invalid.length}`);
      for (const key of total.invalid) ctx.out(`  refused: ${key}`);
      for (const id of total.unauthenticated) ctx.out(`  listed without a MAC (written before MACs): ${id}`);
    }
    return total.invalid.length ? EXIT.failed : EXIT.ok;
  },
};
