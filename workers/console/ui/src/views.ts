// The console's pages. Each takes the page's main element and fills it; a
// page that polls returns a function that stops it.
import { api, query } from "./api.ts";
import { adminButton, backupNow, drill, restore, restoreSnapshot, scenario, verify } from "./actions.ts";
import { chart, toSeconds } from "./charts.ts";
import { ago, bytes, chip, h, link, minutes, seconds, table, when } from "./dom.ts";

export interface Page { main: HTMLElement; admin: boolean }
export type Stop = (() => void) | void;

const TONE = { red: "red", amber: "amber", green: "green" } as const;
const HEALTH_TEXT = { red: "Failing", amber: "At risk", green: "OK" } as const;
const RPO_TONE = { ok: "green", at_risk: "amber", breached: "red", unknown: "grey" } as const;
const RTO_TONE = { ok: "green", at_risk: "amber", breached: "red", unknown: "grey" } as const;
const DOMAIN_LABEL: Record<string, string> = { database: "Database", storage: "Storage", ml: "MLflow", training_data: "Training data" };

const sourceHref = (domain: string, source: string) => `#/source/${domain}/${encodeURIComponent(source)}`;
const jobHref = (id: string) => `#/job/${encodeURIComponent(id)}`;
const backupHref = (domain: string, id: string) => (domain === "storage" ? `#/snapshot/${encodeURIComponent(id)}` : `#/backup/${encodeURIComponent(id)}`);

function heading(main: HTMLElement, text: string, ...after: (Node | string)[]): void {
  main.replaceChildren(h("h1", { tabindex: "-1" }, text), ...after);
}

// ---- Overview ----

export async function overview({ main, admin }: Page): Promise<Stop> {
  const ov = await api("GET", "/overview");

  const rows = (ov.sources as any[]).map((s) => {
    const c = s.continuous;
    const cont = !c ? "—"
      : c.kind === "archive" ? `archiving, ${seconds(c.seconds_behind ?? 0)} behind`
      : c.kind === "replica" ? `replica ${c.replica}, ${seconds(c.seconds_behind ?? 0)} behind` : "versioning";
    return [
      h("span", {}, h("span", { class: "muted" }, `${DOMAIN_LABEL[s.domain] ?? s.domain} `), link(sourceHref(s.domain, s.source), s.source)),
      h("span", {}, chip(TONE[s.health as keyof typeof TONE], HEALTH_TEXT[s.health as keyof typeof HEALTH_TEXT]),
        s.reasons.length ? h("ul", { class: "reasons" }, s.reasons.map((r: string) => h("li", {}, r))) : null),
      s.newest_point ? h("span", {}, link(backupHref(s.domain, s.newest_point.id), ago(s.newest_point.created_at)), h("div", { class: "muted" }, s.newest_point.type)) : "none",
      h("span", {}, chip(RPO_TONE[s.rpo_state as keyof typeof RPO_TONE], minutes(s.rpo_minutes)), ` target ${minutes(s.rpo_target_minutes)}`),
      s.last_verify ? h("span", {}, chip(s.last_verify.status === "passed" ? "green" : "red", s.last_verify.status ?? "?"), ` ${s.last_verify.depth ?? ""} ${ago(s.last_verify.at)}`) : "—",
      s.last_drill ? h("span", {}, chip(s.last_drill.passed ? "green" : "red", s.last_drill.passed ? "passed" : "failed"), ` ${ago(s.last_drill.at)}`) : "never",
      h("span", {}, chip(RTO_TONE[s.rto.state as keyof typeof RTO_TONE], minutes(s.rto.implied_minutes)), ` target ${minutes(s.rto.target_minutes)}`),
      cont,
      s.next_run ? h("span", { title: s.next_run.schedule }, ago(s.next_run.at)) : "off",
      admin ? adminButton("Back up now", () => backupNow(s.domain, s.source), { "aria-label": `Back up ${s.source} now` }) : "",
    ];
  });
  const headers = ["Source", "Health", "Newest point", "RPO", "Last verify", "Last drill", "RTO (implied)", "Continuous", "Next run", admin ? "Actions" : ""];
  const drillLine = ov.last_drill ? `last drill ${ov.last_drill.status} ${ago(ov.last_drill.started_at)}` : "no drill yet";
  heading(main, "Protection overview",
    h("p", { class: "summary" }, `RPO target ${minutes(ov.rpo_target_minutes)} · RTO target ${minutes(ov.rto_target_minutes)} · ${drillLine} · next drill ${ago(ov.next_drill_at)}`),
    admin ? h("div", { class: "toolbar" }, adminButton("Run a drill", drill), adminButton("Rehearse a scenario", () => void scenario())) : "",
    table(admin ? headers : headers.slice(0, -1), admin ? rows : rows.map((r) => r.slice(0, -1)), { caption: "Protected sources, failing first", empty: "No sources are configured." }),
  );

  // Charts of one source at a time.
  const sources = ov.sources as { domain: string; source: string }[];
  if (sources.length === 0) return;
  // The first source with something to draw, failing ones first as the table lists them.
  const first = Math.max(0, (ov.sources as any[]).findIndex((s) => s.newest_point));
  const pick = h("select", { id: "chart-source" }, sources.map((s, i) => h("option", { value: String(i), selected: i === first }, `${DOMAIN_LABEL[s.domain]} ${s.source}`)));
  const days = h("select", { id: "chart-days" }, [7, 14, 30, 90].map((d) => h("option", { value: String(d), selected: d === 14 }, `${d} days`)));
  const box = h("div", { class: "charts", id: "charts" });
  main.append(h("h2", {}, "History"),
    h("div", { class: "toolbar" }, h("div", {}, h("label", { for: "chart-source" }, "Source"), pick), h("div", {}, h("label", { for: "chart-days" }, "Window"), days)),
    box);
  const draw = async () => {
    const s = sources[Number(pick.value)]!;
    const st = await api("GET", `/stats/backups${query({ domain: s.domain, source: s.source, days: days.value })}`);
    box.replaceChildren(...charts(st));
  };
  pick.onchange = () => void draw();
  days.onchange = () => void draw();
  await draw();
}

function charts(st: any): HTMLElement[] {
  const b = st.backups as any[];
  const xs = b.map((p) => toSeconds(p.finished_at));
  const window: [number, number] = [toSeconds(st.since), Date.now() / 1000];
  return [
    chart({
      title: "Backup size: logical, stored, new", xs, window, unit: "bytes", empty: "No backups in this window.",
      series: [
        { label: "logical", values: b.map((p) => p.logical_bytes), color: "#0b57d0" },
        { label: "stored", values: b.map((p) => p.stored_bytes), color: "#8a5a00" },
        { label: "new", values: b.map((p) => p.new_bytes), color: "#1e6b30" },
      ],
    }),
    chart({
      title: "Backup duration", xs, window, unit: "seconds", empty: "No backups in this window.",
      series: [{ label: "backup", values: b.map((p) => p.duration_ms / 1000), color: "#0b57d0" }],
    }),
    chart({
      title: "Restore duration", window, xs: (st.restores as any[]).map((r) => toSeconds(r.finished_at)), unit: "seconds", empty: "No restores in this window.",
      series: [{ label: "restore", values: (st.restores as any[]).map((r) => r.duration_ms / 1000), color: "#6b2fb3" }],
    }),
    chart({
      title: "RPO (age of the newest restore point)", window, xs: (st.rpo as any[]).map((r) => toSeconds(r.at)), unit: "minutes", empty: "No restore point yet.",
      series: [{ label: "RPO", values: (st.rpo as any[]).map((r) => r.minutes), color: "#0b57d0" }],
      target: { label: "target", value: st.rpo_target_minutes },
    }),
    chart({
      title: st.replica ? `Replication lag to ${st.replica}` : "Replication lag", window, xs: (st.replication_lag as any[]).map((r) => toSeconds(r.at)), unit: "seconds",
      empty: st.replica ? "No replicated changes in this window." : "Not replicated.",
      series: [{ label: "lag", values: (st.replication_lag as any[]).map((r) => r.seconds), color: "#8a5a00" }],
    }),
  ];
}

// ---- A source's restore points ----

export async function source({ main, admin }: Page, domain: string, name: string): Promise<Stop> {
  const cursors: (string | undefined)[] = [undefined];
  let at = 0;
  const filters = h("div", { class: "toolbar" });
  const status = h("select", { id: "filter-status" }, ["", "completed", "corrupt"].map((v) => h("option", { value: v }, v || "any")));
  const type = h("select", { id: "filter-type" }, ["", "full", "incremental", "archive"].map((v) => h("option", { value: v }, v || "any")));
  if (domain !== "storage") filters.append(h("div", {}, h("label", { for: "filter-status" }, "Status"), status));
  if (domain === "database") filters.append(h("div", {}, h("label", { for: "filter-type" }, "Type"), type));
  if (admin) filters.append(adminButton("Back up now", () => backupNow(domain, name)));
  const list = h("div", {});
  const prev = h("button", { type: "button" }, "Newer");
  const next = h("button", { type: "button" }, "Older");
  heading(main, `${DOMAIN_LABEL[domain] ?? domain} ${name}: restore points`, filters, list, h("div", { class: "pager" }, prev, next));

  const load = async () => {
    let rows: any[][] = [];
    let nextCursor: string | undefined;
    if (domain === "storage") {
      const bucket = name.split("/")[0]!;
      const prefix = name.slice(bucket.length + 1);
      const r = await api("GET", `/backup/storage${query({ bucket, limit: 20, before: cursors[at] })}`);
      const snaps = (r.snapshots as any[]).filter((s) => s.prefix === prefix);
      nextCursor = r.snapshots.length === 20 ? r.snapshots[19].id : undefined;
      rows = snaps.map((s) => [link(`#/snapshot/${encodeURIComponent(s.id)}`, s.id), when(s.created_at), String(s.objects), bytes(s.bytes), bytes(s.copied_bytes), seconds(s.duration_ms / 1000),
        admin ? adminButton("Restore", () => restoreSnapshot(s)) : ""]);
      list.replaceChildren(table(["Snapshot", "Taken", "Objects", "Size", "Copied", "Took", admin ? "Actions" : ""], rows, { empty: "No snapshots." }));
    } else {
      const path = domain === "database"
        ? `/backup/database${query({ database: name, type: type.value, status: status.value, limit: 20, cursor: cursors[at] })}`
        : `/backup/ml${query({ domain, source: name, status: status.value, limit: 20, cursor: cursors[at] })}`;
      const r = await api("GET", path);
      nextCursor = r.next_cursor;
      rows = (r.backups as any[]).map((b) => [
        link(`#/backup/${encodeURIComponent(b.backup_id)}`, b.backup_id), b.type ?? "", when(b.created_at),
        b.status === "corrupt" ? chip("red", "corrupt") : "completed",
        bytes(b.logical_bytes), bytes(b.stored_bytes), bytes(b.new_stored_bytes),
        b.verify_status ? chip(b.verify_status === "passed" ? "green" : "red", `${b.verify_depth} ${b.verify_status}`) : "not yet",
        admin ? h("span", { class: "actions" }, adminButton("Verify", () => verify(b.backup_id)), adminButton("Restore", () => restore(b))) : "",
      ]);
      list.replaceChildren(table(["Backup", "Type", "Taken", "Status", "Logical", "Stored", "New", "Verify", admin ? "Actions" : ""], rows, { empty: "No restore points match." }));
    }
    cursors[at + 1] = nextCursor;
    prev.disabled = at === 0;
    next.disabled = !nextCursor;
  };
  prev.onclick = () => { at = Math.max(0, at - 1); void load(); };
  next.onclick = () => { at += 1; void load(); };
  status.onchange = type.onchange = () => { at = 0; cursors.length = 1; void load(); };
  await load();
}

// ---- One backup ----

export async function backup({ main, admin }: Page, id: string): Promise<Stop> {
  const [b, restores] = await Promise.all([
    api("GET", `/backups/${encodeURIComponent(id)}`),
    api("GET", "/jobs?limit=200").then((r) => (r.jobs as any[]).filter((j) => j.backup_id === id && j.kind.endsWith(".restore"))),
  ]);
  const facts = h("dl", { class: "facts" },
    ...fact("Source", link(sourceHref(b.domain, b.source), `${DOMAIN_LABEL[b.domain] ?? b.domain} ${b.source}`)),
    ...fact("Type", b.type), ...fact("Status", b.status === "corrupt" ? chip("red", "corrupt") : b.status),
    ...fact("Taken", `${when(b.created_at)} (${ago(b.created_at)})`), ...fact("Took", seconds(b.duration_ms / 1000)),
    ...fact("Logical size", bytes(b.logical_bytes)), ...fact("Stored size", bytes(b.stored_bytes)), ...fact("New bytes", bytes(b.new_stored_bytes)),
    ...fact("Chunks", String(b.chunk_count)), ...fact("Manifest", b.manifest_key), ...fact("SHA-256", b.sha256 ?? b.digest ?? "—"),
  );
  const verifyBox = b.verified_at
    ? h("div", {}, chip(b.verify_status === "passed" ? "green" : "red", `${b.verify_depth} verify ${b.verify_status}`), ` ${when(b.verified_at)}`,
      b.verify_detail ? h("pre", {}, b.verify_detail) : null)
    : h("p", { class: "muted" }, "Not verified yet.");
  heading(main, `Backup ${id}`,
    admin ? h("div", { class: "toolbar" }, adminButton("Verify", () => verify(id)), adminButton("Restore", () => restore(b))) : "",
    h("section", { class: "card", "aria-labelledby": "manifest-h" }, h("h2", { id: "manifest-h" }, "Manifest"), facts),
    h("section", { class: "card", "aria-labelledby": "verify-h" }, h("h2", { id: "verify-h" }, "Verification"), verifyBox),
    h("section", { class: "card", "aria-labelledby": "restores-h" }, h("h2", { id: "restores-h" }, "Restores"),
      table(["Job", "Status", "Started", "Took"], restores.map((j) => [link(jobHref(j.id), j.id), statusChip(j.status), when(j.started_at ?? j.created_at), j.result?.duration_ms ? seconds(j.result.duration_ms / 1000) : "—"]),
        { empty: "Never restored." })),
  );
}

export async function snapshot({ main, admin }: Page, id: string): Promise<Stop> {
  const s = await api("GET", `/backup/storage/${encodeURIComponent(id)}`);
  heading(main, `Snapshot ${id}`,
    admin ? h("div", { class: "toolbar" }, adminButton("Restore", () => restoreSnapshot(s))) : "",
    h("section", { class: "card" }, h("dl", { class: "facts" },
      ...fact("Source", link(sourceHref("storage", `${s.bucket}/${s.prefix}`), `${s.bucket}/${s.prefix}`)),
      ...fact("Taken", `${when(s.created_at)} (${ago(s.created_at)})`), ...fact("Objects", String(s.objects)),
      ...fact("Size", bytes(s.bytes)), ...fact("Copied", `${s.copied_objects} objects, ${bytes(s.copied_bytes)}`),
      ...fact("Parent", s.parent_id ?? "none (full)"), ...fact("Manifest", s.manifest_key ?? "—"))));
}

const fact = (k: string, v: Node | string) => [h("dt", {}, k), h("dd", {}, v)];

function statusChip(status: string) {
  return chip(status === "succeeded" ? "green" : status === "failed" ? "red" : status === "running" ? "amber" : "grey", status);
}

// ---- Jobs ----

/** Progress of a running job with rate and ETA from successive polls; the total is estimated from the backup concerned. */
class ProgressTracker {
  #seen = new Map<string, { at: number; bytes: number; rate: number | null }>();
  #totals = new Map<string, Promise<number | null>>();

  update(job: any, now: number) {
    const bytes = job.progress?.bytes ?? 0;
    const before = this.#seen.get(job.id);
    let rate = before?.rate ?? null;
    if (before && now > before.at && bytes >= before.bytes) {
      const instant = ((bytes - before.bytes) / (now - before.at)) * 1000;
      rate = rate === null ? instant : 0.7 * rate + 0.3 * instant; // smoothed: polls are uneven
    }
    this.#seen.set(job.id, { at: now, bytes, rate });
    return rate;
  }

  /** A restore or verify reads its backup's logical bytes; a backup about as many as the source's last one. */
  total(job: any): Promise<number | null> {
    if (!this.#totals.has(job.id)) {
      const fetchTotal = async () => {
        if (!job.backup_id) return null;
        if (job.kind.endsWith(".restore") || job.kind.endsWith(".verify")) return (await api("GET", `/backups/${encodeURIComponent(job.backup_id)}`)).logical_bytes ?? null;
        return null;
      };
      this.#totals.set(job.id, fetchTotal().catch(() => null));
    }
    return this.#totals.get(job.id)!;
  }
}

function progressCells(job: any, rate: number | null, total: number | null) {
  const p = job.progress ?? {};
  const unit = job.kind.startsWith("storage.") ? "objects" : "chunks";
  const pct = total && p.bytes ? Math.min(100, (p.bytes / total) * 100) : null;
  const eta = total && rate && rate > 0 && p.bytes < total ? (total - p.bytes) / rate : null;
  return [
    p.phase ?? job.queued_reason ?? job.status,
    h("span", {}, bytes(p.bytes ?? 0), pct === null ? null : h("progress", { max: "100", value: pct.toFixed(0), "aria-label": `${job.kind} ${pct.toFixed(0)}%` })),
    `${p.chunks ?? 0} ${unit}`,
    rate === null ? "—" : `${bytes(rate)}/s`,
    eta === null ? "—" : seconds(eta),
  ];
}

export async function jobs({ main }: Page): Promise<Stop> {
  const tracker = new ProgressTracker();
  const active = h("div", { id: "jobs-active" });
  const recent = h("div", { id: "jobs-recent" });
  heading(main, "Jobs", h("h2", {}, "In flight"), active, h("h2", {}, "Recent"), recent);
  let stopped = false;
  const poll = async () => {
    const [running, queued, latest] = await Promise.all([
      api("GET", "/jobs?status=running&limit=50"), api("GET", "/jobs?status=queued&limit=50"), api("GET", "/jobs?limit=20"),
    ]);
    const now = Date.now();
    const inFlight = [...running.jobs, ...queued.jobs] as any[];
    const rows = await Promise.all(inFlight.map(async (j) => [
      link(jobHref(j.id), j.id), j.kind, statusChip(j.status), ...progressCells(j, tracker.update(j, now), await tracker.total(j)), ago(j.started_at ?? j.created_at),
    ]));
    if (stopped) return;
    active.replaceChildren(table(["Job", "Kind", "Status", "Phase", "Bytes", "Chunks/objects", "Rate", "ETA", "Started"], rows, { empty: "Nothing running." }));
    recent.replaceChildren(table(["Job", "Kind", "Status", "Created", "Error"], (latest.jobs as any[]).map((j) => [
      link(jobHref(j.id), j.id), j.kind, statusChip(j.status), when(j.created_at), j.error ? j.error.code : "",
    ])));
  };
  await poll();
  const timer = setInterval(() => void poll().catch(() => {}), 1000);
  return () => { stopped = true; clearInterval(timer); };
}

let runbookCache: Promise<any> | undefined;
const runbook = () => (runbookCache ??= fetch("runbook.json").then((r) => r.json()).catch(() => ({ sections: [], codes: {} })));

/** The runbook's advice for an error code: its table row, and the section it sits in. */
async function runbookFor(code: string): Promise<HTMLElement> {
  const rb = await runbook();
  const entry = rb.codes[code];
  const section = rb.sections.find((s: any) => s.anchor === (entry?.section ?? "2-a-job-failed"));
  return h("div", { class: "runbook" },
    entry ? h("p", {}, h("strong", {}, "Meaning: "), entry.meaning, h("br"), h("strong", {}, "Action: "), entry.action) : h("p", { class: "muted" }, `The runbook has no row for ${code}; see its section on failed jobs.`),
    section ? h("details", {}, h("summary", {}, `Runbook: ${section.title} (docs/runbook.md#${section.anchor})`), h("pre", {}, section.text)) : null);
}

export async function failed({ main }: Page): Promise<Stop> {
  const r = await api("GET", "/jobs?status=failed&limit=50");
  const rows = await Promise.all((r.jobs as any[]).map(async (j) => [
    link(jobHref(j.id), j.id), j.kind, when(j.finished_at ?? j.created_at),
    h("code", { class: "error-code" }, j.error?.code ?? "?"), j.error?.message ?? "", await runbookFor(j.error?.code ?? ""),
  ]));
  heading(main, "Failed jobs", table(["Job", "Kind", "Failed", "Error code", "Message", "What to do"], rows, { empty: "No failed jobs." }));
}

export async function job({ main }: Page, id: string): Promise<Stop> {
  const tracker = new ProgressTracker();
  let stopped = false;
  heading(main, `Job ${id}`, h("div", { id: "job-detail" }));
  const box = main.querySelector("#job-detail")!;
  const poll = async (): Promise<boolean> => {
    const j = await api("GET", `/jobs/${encodeURIComponent(id)}`);
    const rate = tracker.update(j, Date.now());
    const total = await tracker.total(j);
    if (stopped) return true;
    const [phase, size, units, speed, eta] = progressCells(j, rate, total);
    box.replaceChildren(
      h("section", { class: "card" }, h("dl", { class: "facts", id: "job-facts" },
        ...fact("Kind", j.kind), ...fact("Status", statusChip(j.status)),
        ...fact("Created", when(j.created_at)), ...fact("Started", when(j.started_at)), ...fact("Finished", when(j.finished_at)),
        ...(j.status === "running" || j.status === "queued"
          ? [...fact("Phase", String(phase)), ...fact("Bytes", size as HTMLElement), ...fact("Progress", String(units)), ...fact("Rate", String(speed)), ...fact("ETA", String(eta))]
          : []),
        ...(j.backup_id ? fact("Backup", link(`#/backup/${encodeURIComponent(j.backup_id)}`, j.backup_id)) : []),
        ...(j.queued_reason ? fact("Waiting because", j.queued_reason) : []))),
      j.error ? h("section", { class: "card", "aria-labelledby": "err-h" }, h("h2", { id: "err-h" }, "Error"),
        h("p", {}, h("code", { class: "error-code" }, j.error.code), " ", j.error.message), await runbookFor(j.error.code)) : "",
      j.result ? h("section", { class: "card" }, h("h2", {}, "Result"), h("pre", {}, JSON.stringify(j.result, null, 2))) : "",
    );
    return j.status === "succeeded" || j.status === "failed";
  };
  if (await poll()) return;
  const timer = setInterval(() => void poll().then((done) => { if (done) clearInterval(timer); }).catch(() => {}), 1000);
  return () => { stopped = true; clearInterval(timer); };
}

export async function audit({ main }: Page): Promise<Stop> {
  const r = await api("GET", "/audit?limit=200");
  heading(main, "Audit log", table(["When", "Actor", "Action", "Target", "Outcome"], (r.entries as any[]).map((e) => [
    when(e.at), e.actor, e.action, e.target ?? "", e.outcome === "denied" || e.outcome === "failed" ? chip("red", e.outcome) : e.outcome,
  ]), { empty: "The audit log is empty." }));
}
