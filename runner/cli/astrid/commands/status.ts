// astrid-backup status: every protected source at a glance (GET /dr/status):
// newest and newest verified restore point, RPO against its target, last drill.
import { type Command, printJson } from "../context.ts";
import { formatAge, formatMinutes, renderTable } from "../table.ts";

export const status: Command = {
  name: "status",
  summary: "Every protected source: newest restore point, RPO against the target, last drill",
  usage: "",
  async run(ctx) {
    const s = await ctx.api.call("get", "/dr/status");
    if (ctx.json) return printJson(ctx, s);
    const now = ctx.now();
    // Failing things first: an operator at 3 AM reads the top rows.
    const sources = [...s.sources].sort((a, b) => Number(a.rpo_met) - Number(b.rpo_met) || a.domain.localeCompare(b.domain) || a.source.localeCompare(b.source));
    ctx.out(renderTable([
      { header: "DOMAIN", value: (r) => r.domain },
      { header: "SOURCE", value: (r) => r.source },
      { header: "PROTECTION", value: (r) => r.protection.replace("_", " ") },
      { header: "NEWEST", value: (r) => formatAge(r.newest_point?.created_at, now) },
      { header: "VERIFIED", value: (r) => formatAge(r.newest_verified_point?.created_at, now) },
      { header: "RPO", value: (r) => `${formatMinutes(r.rpo_minutes)} / ${formatMinutes(r.rpo_target_minutes)}`, align: "right" },
      { header: "RPO MET", value: (r) => (r.rpo_met ? "yes" : "NO") },
      { header: "LAST DRILL", value: (r) => (r.last_drill ? `${r.last_drill.passed ? "passed" : "FAILED"} ${formatAge(r.last_drill.at, now)}` : "-") },
    ], sources));
    const d = s.last_drill;
    ctx.out("");
    ctx.out(d ? `last drill: ${d.status} ${formatAge(d.started_at, now)} (run ${d.run_id})` : "no drill has run yet: astrid-backup drill --wait");
    ctx.out(`targets: RPO ${formatMinutes(s.rpo_target_minutes)}, RTO ${formatMinutes(s.rto_target_minutes)}`);
  },
};
