// GET /metrics: Prometheus text exposition (format 0.0.4) of what the catalog
// knows: backups, restores, drills, RPO/RTO, replication lag, failed jobs and
// firing alerts. Names follow Prometheus conventions (base units, _total for
// counters, _timestamp_seconds for times); docs/alert-rules.yml uses them.
import type { KindContext } from "../context.ts";
import { replicationStatus } from "../storage/status.ts";
import { openDrStore } from "./runs.ts";
import { computeRto, computeStatus } from "./status.ts";

type Labels = Record<string, string>;

class Exposition {
  private lines: string[] = [];
  metric(name: string, type: "gauge" | "counter", help: string, samples: [Labels, number][]) {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) {
      const l = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`).join(",");
      this.lines.push(`${name}${l ? `{${l}}` : ""} ${Number.isFinite(value) ? value : "NaN"}`);
    }
  }
  text() {
    return `${this.lines.join("\n")}\n`;
  }
}

const seconds = (iso: string) => Date.parse(iso) / 1000;

export async function renderMetrics(ctx: KindContext): Promise<string> {
  const { env, config, now } = ctx;
  const store = openDrStore(env.CATALOG);
  const out = new Exposition();
  const newest = await store.newestBackups();
  const snapshots = await store.newestSnapshots();
  const backupLabels = (b: (typeof newest)[number]) => ({ domain: b.domain, source: b.source, type: b.type });
  const snapLabels = (s: (typeof snapshots)[number]) => ({ domain: "storage", source: `${s.bucket}/${s.prefix}`, type: "snapshot" });
  out.metric("astrid_backup_last_success_timestamp_seconds", "gauge", "When the newest successful backup finished.", [
    ...newest.map((b): [Labels, number] => [backupLabels(b), seconds(b.finished_at)]),
    ...snapshots.map((s): [Labels, number] => [snapLabels(s), seconds(s.finished_at)]),
  ]);
  out.metric("astrid_backup_duration_seconds", "gauge", "How long the newest successful backup took.", [
    ...newest.map((b): [Labels, number] => [backupLabels(b), b.duration_ms / 1000]),
    ...snapshots.map((s): [Labels, number] => [snapLabels(s), s.duration_ms / 1000]),
  ]);
  out.metric("astrid_backup_logical_bytes", "gauge", "Bytes the newest backup restores to.", [
    ...newest.map((b): [Labels, number] => [backupLabels(b), b.logical_bytes]),
    ...snapshots.map((s): [Labels, number] => [snapLabels(s), s.bytes]),
  ]);
  out.metric("astrid_backup_stored_bytes", "gauge", "Bytes the newest backup references in the repository (after compression).", [
    ...newest.map((b): [Labels, number] => [backupLabels(b), b.stored_bytes]),
  ]);
  const rto = await computeRto(ctx);
  out.metric("astrid_restore_last_duration_seconds", "gauge", "Duration of the last measured restore (drill or restore job).",
    rto.filter((r) => r.last_seconds !== null).map((r) => [{ domain: r.domain, source: r.source }, r.last_seconds!]));
  out.metric("astrid_rto_estimate_seconds", "gauge", "Restore time implied for the newest restore point at measured throughput.",
    rto.filter((r) => r.implied_rto_minutes !== null).map((r) => [{ domain: r.domain, source: r.source }, r.implied_rto_minutes! * 60]));
  out.metric("astrid_rto_target_seconds", "gauge", "RTO_TARGET_MINUTES.", [[{}, config.rto_target_minutes * 60]]);
  const status = await computeStatus(ctx);
  out.metric("astrid_rpo_seconds", "gauge", "RPO in force: age of the newest verified restore point, or under continuous protection the replica lag or the continuous archive's age.",
    status.sources.filter((s) => s.rpo_minutes !== null).map((s) => [{ domain: s.domain, source: s.source }, s.rpo_minutes! * 60]));
  out.metric("astrid_rpo_target_seconds", "gauge", "RPO_TARGET_MINUTES.", [[{}, config.rpo_target_minutes * 60]]);
  const lastPassed = await store.latestRun("drill", true);
  const last = await store.latestRun("drill");
  out.metric("astrid_dr_last_drill_success_timestamp_seconds", "gauge", "When the newest passed drill finished.",
    lastPassed?.finished_at ? [[{}, seconds(lastPassed.finished_at)]] : []);
  out.metric("astrid_dr_last_drill_passed", "gauge", "1 if the newest finished drill passed, 0 if it failed.", last ? [[{}, last.status === "passed" ? 1 : 0]] : []);
  out.metric("astrid_dr_last_drill_data_loss_seconds", "gauge", "Data loss the newest finished drill measured.",
    last?.data_loss_seconds != null ? [[{}, last.data_loss_seconds]] : []);
  out.metric("astrid_replication_lag_seconds", "gauge", "Worst replication lag of the last hour.",
    (await replicationStatus(env, config, now)).filter((r) => r.replica).map((r) => [{ bucket: r.bucket, replica: r.replica! }, r.seconds_behind]));
  const failed = await store.failedJobsByKind();
  out.metric("astrid_jobs_failed_total", "counter", "Jobs that ended failed, by kind (as long as the catalog keeps them).", failed.map((f) => [{ kind: f.kind }, f.n]));
  const firing = (await store.listAlerts("firing")).reduce<Record<string, number>>((m, a) => ({ ...m, [a.kind]: (m[a.kind] ?? 0) + 1 }), {});
  out.metric("astrid_alerts_firing", "gauge", "Alerts firing now, by kind.", Object.entries(firing).map(([kind, n]) => [{ kind }, n]));
  return out.text();
}
