// Admin actions, each behind a confirmation dialog that says what will
// happen. Viewers never see them (and the API refuses them anyway).
import { api, ApiError } from "./api.ts";
import { h } from "./dom.ts";

interface Field { name: string; label: string; kind: "text" | "select" | "checkbox"; options?: string[]; value?: string; hint?: string; required?: boolean }

interface Confirmation {
  title: string;
  /** What will happen, from the fields' current values. */
  what: (v: Record<string, string | boolean>) => string;
  ok: string;
  danger?: boolean;
  fields?: Field[];
  /** Sends the request; answers where to go next (e.g. the job's page). */
  run: (v: Record<string, string | boolean>) => Promise<string | void>;
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

export function confirmAction(c: Confirmation): void {
  const dialog = $<HTMLDialogElement>("confirm");
  const form = $<HTMLFormElement>("confirm-form");
  const fieldsBox = $("confirm-fields");
  const what = $("confirm-what");
  const error = $("confirm-error");
  const ok = $<HTMLButtonElement>("confirm-ok");
  $("confirm-title").textContent = c.title;
  ok.textContent = c.ok;
  ok.className = c.danger ? "danger" : "primary";
  ok.disabled = false;
  error.textContent = "";
  fieldsBox.replaceChildren();
  const inputs = new Map<string, HTMLInputElement | HTMLSelectElement>();
  for (const f of c.fields ?? []) {
    const id = `field-${f.name}`;
    let input: HTMLInputElement | HTMLSelectElement;
    if (f.kind === "select") {
      input = h("select", { id, name: f.name }, (f.options ?? []).map((o) => h("option", { value: o, selected: o === f.value }, o)));
      fieldsBox.append(h("label", { for: id }, f.label), input);
    } else if (f.kind === "checkbox") {
      input = h("input", { id, name: f.name, type: "checkbox" });
      fieldsBox.append(h("label", { class: "inline", for: id }, input, f.label));
    } else {
      input = h("input", { id, name: f.name, type: "text", value: f.value ?? "", autocomplete: "off", spellcheck: "false", required: f.required ?? false });
      fieldsBox.append(h("label", { for: id }, f.label), input);
    }
    if (f.hint) {
      input.setAttribute("aria-describedby", `${id}-hint`);
      fieldsBox.append(h("div", { id: `${id}-hint`, class: "muted" }, f.hint));
    }
    inputs.set(f.name, input);
  }
  const values = () => Object.fromEntries([...inputs].map(([k, el]) => [k, el instanceof HTMLInputElement && el.type === "checkbox" ? el.checked : el.value.trim()]));
  const explain = () => (what.textContent = c.what(values()));
  explain();
  fieldsBox.oninput = explain;
  fieldsBox.onchange = explain;
  $("confirm-cancel").onclick = () => dialog.close();
  form.onsubmit = async (e) => {
    e.preventDefault();
    ok.disabled = true;
    error.textContent = "";
    try {
      const next = await c.run(values());
      dialog.close();
      if (next) location.hash = next;
      else window.dispatchEvent(new HashChangeEvent("hashchange"));
    } catch (err) {
      error.textContent = err instanceof ApiError ? `${err.code}: ${err.message}` : String(err);
      ok.disabled = false;
    }
  };
  dialog.showModal();
  (fieldsBox.querySelector("input, select") as HTMLElement | null ?? ok).focus();
}

const jobPage = (r: { job_id?: string; jobs?: { job_id: string }[] }) => {
  const id = r.job_id ?? r.jobs?.[0]?.job_id;
  return id ? `#/job/${encodeURIComponent(id)}` : "#/jobs";
};

/** "Back up now" for one source. */
export function backupNow(domain: string, source: string): void {
  if (domain === "database") {
    confirmAction({
      title: `Back up database ${source}`, ok: "Start backup",
      fields: [{ name: "type", label: "Type", kind: "select", options: ["full", "incremental", "archive"], value: "full" }],
      what: (v) => `Starts a ${v.type} backup of database "${source}" now, on the runner. It reads the database with pg_dump (no locks beyond pg_dump's) and waits if a backup of it is already running; it is verified when it ends.`,
      run: async (v) => jobPage(await api("POST", "/backup/database", { type: v.type, database: source })),
    });
  } else if (domain === "storage") {
    const slash = source.indexOf("/");
    const [bucket, prefix] = [source.slice(0, slash < 0 ? undefined : slash), slash < 0 ? "" : source.slice(slash + 1)];
    confirmAction({
      title: `Snapshot ${source}`, ok: "Start snapshot",
      what: () => `Takes an incremental snapshot of bucket "${bucket}"${prefix ? ` under "${prefix}"` : ""} now: objects changed since the last snapshot are copied into the backup bucket. Nothing in the bucket is changed.`,
      run: async () => jobPage(await api("POST", "/backup/storage", { bucket, prefix })),
    });
  } else if (domain === "ml") {
    confirmAction({
      title: `Back up MLflow server ${source}`, ok: "Start backup",
      what: () => `Exports experiments, runs, metric histories, artifacts, logged models and the model registry of MLflow server "${source}" into the repository now. The server is only read.`,
      run: async () => jobPage(await api("POST", "/backup/ml", { server: source })),
    });
  } else {
    confirmAction({
      title: `Snapshot training dataset ${source}`, ok: "Start snapshot",
      what: () => `Takes an immutable snapshot (with digest) of training dataset "${source}" now. Its tables, queries and R2 prefixes are only read.`,
      run: async () => jobPage(await api("POST", "/backup/training-data", { dataset_id: source })),
    });
  }
}

export function verify(backupId: string): void {
  confirmAction({
    title: `Verify ${backupId}`, ok: "Start verify",
    fields: [{ name: "depth", label: "Depth", kind: "select", options: ["quick", "full"], value: "quick" }],
    what: (v) => v.depth === "full"
      ? `Reads every chunk of ${backupId}, decrypts it and reads the dump through. Damage marks the backup corrupt.`
      : `Checks that every chunk ${backupId} names is stored, with the right size. Damage marks the backup corrupt.`,
    run: async (v) => jobPage(await api("POST", `/backups/${encodeURIComponent(backupId)}/verify`, { depth: v.depth })),
  });
}

/** Restore a backup of a database, an MLflow server or a training dataset. */
export function restore(backup: { backup_id: string; domain: string; source: string }): void {
  const id = backup.backup_id;
  const path = `/backups/${encodeURIComponent(id)}/restore`;
  if (backup.domain === "database") {
    confirmAction({
      title: `Restore ${id}`, ok: "Restore", danger: true,
      fields: [
        { name: "target", label: "Target database (a configured name or a postgres:// URL)", kind: "text", required: true, hint: "Sent in the request body only; a URL is never stored or shown again." },
        { name: "replace", label: "Replace: drop everything the target holds first", kind: "checkbox" },
      ],
      what: (v) => !v.target ? "Name the target database." : v.replace
        ? `Restores ${backup.source}'s backup ${id} into "${redact(String(v.target))}", REPLACING whatever that database holds now.`
        : `Restores ${backup.source}'s backup ${id} into "${redact(String(v.target))}". The restore is refused if that database is not empty (tick Replace to overwrite it).`,
      run: async (v) => jobPage(await api("POST", path, { target: v.target, replace: v.replace })),
    });
  } else if (backup.domain === "ml") {
    confirmAction({
      title: `Restore ${id}`, ok: "Restore", danger: true,
      fields: [{ name: "target", label: "Target MLflow server (a configured name or a tracking URI)", kind: "text", required: true }],
      what: (v) => v.target ? `Recreates the experiments, runs, artifacts, logged models and registry of ${id} in MLflow server "${redact(String(v.target))}". What already exists there is left alone; restoring twice adds nothing.` : "Name the target server.",
      run: async (v) => jobPage(await api("POST", path, { target: v.target })),
    });
  } else {
    confirmAction({
      title: `Restore ${id}`, ok: "Restore", danger: true,
      fields: [
        { name: "target", label: "Target database for tables and queries (name or postgres:// URL; optional)", kind: "text" },
        { name: "bucket", label: "Target bucket for R2 objects (optional)", kind: "text" },
      ],
      what: (v) => `Restores training-data snapshot ${id}${v.target ? ` (tables into "${redact(String(v.target))}")` : ""}${v.bucket ? ` (objects into bucket "${v.bucket}")` : ""}; the digest is read back and checked.`,
      run: async (v) => jobPage(await api("POST", path, { ...(v.target ? { target: v.target } : {}), ...(v.bucket ? { bucket: v.bucket } : {}) })),
    });
  }
}

export function restoreSnapshot(snapshot: { id: string; bucket: string; prefix: string }): void {
  confirmAction({
    title: `Restore snapshot ${snapshot.id}`, ok: "Restore", danger: true,
    fields: [
      { name: "target_bucket", label: "Target bucket", kind: "text", value: snapshot.bucket, required: true },
      { name: "overwrite", label: "Overwrite objects that differ from the snapshot", kind: "checkbox" },
      { name: "dry_run", label: "Dry run: only count what would change", kind: "checkbox" },
    ],
    what: (v) => `${v.dry_run ? "Counts what restoring" : "Restores"} snapshot ${snapshot.id} of ${snapshot.bucket}/${snapshot.prefix} into bucket "${v.target_bucket}"${v.dry_run ? " would change" : ""}. ${v.overwrite ? "Objects that differ are OVERWRITTEN." : "Objects that differ are left alone and reported as conflicts."}`,
    run: async (v) => jobPage(await api("POST", `/backup/storage/${encodeURIComponent(snapshot.id)}/restore`, { target_bucket: v.target_bucket, overwrite: v.overwrite, dry_run: v.dry_run })),
  });
}

export function drill(): void {
  confirmAction({
    title: "Run a recovery drill", ok: "Start drill",
    what: () => "Restores the newest verified point of every domain into scratch copies, validates them (databases table by table) and drops the copies. Production is only read. Its measured RTO and data loss feed the overview.",
    run: async () => jobPage(await api("POST", "/backup/test-recovery", {})),
  });
}

export async function scenario(): Promise<void> {
  const { scenarios } = await api<{ scenarios: { name: string; summary: string; simulated: boolean }[] }>("GET", "/dr/scenarios");
  const simulated = scenarios.filter((s) => s.simulated);
  confirmAction({
    title: "Rehearse a disaster scenario", ok: "Start scenario",
    fields: [{ name: "name", label: "Scenario", kind: "select", options: simulated.map((s) => s.name), value: simulated[0]?.name }],
    what: (v) => `${simulated.find((s) => s.name === v.name)?.summary ?? ""} Simulated on scratch copies only, following its runbook section; production is not touched.`,
    run: async (v) => jobPage(await api("POST", `/dr/scenarios/${encodeURIComponent(String(v.name))}/simulate`, {})),
  });
}

/** A target as the confirmation repeats it: a URL's password is never echoed. */
function redact(target: string): string {
  try {
    const u = new URL(target);
    if (u.password) u.password = "****";
    return u.toString();
  } catch {
    return target;
  }
}

export const adminButton = (label: string, onclick: () => void, extra: Record<string, string> = {}) =>
  h("button", { type: "button", onclick: () => onclick(), "data-admin-action": "", ...extra }, label);
