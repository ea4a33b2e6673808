// Plain-text rendering: aligned tables, key/value blocks, sizes, ages and
// durations. Pure functions of their input (and of `now`), so tests can
// check what a user sees.

export interface Column<T> {
  header: string;
  value: (row: T) => string;
  /** Numbers read best right-aligned. */
  align?: "left" | "right";
}

export function renderTable<T>(columns: Column<T>[], rows: T[]): string {
  const cells = rows.map((r) => columns.map((c) => clean(c.value(r))));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((row) => row[i]!.length)));
  const line = (values: string[]) =>
    values.map((v, i) => (columns[i]!.align === "right" ? v.padStart(widths[i]!) : v.padEnd(widths[i]!))).join("  ").trimEnd();
  return [line(columns.map((c) => c.header)), ...cells.map(line)].join("\n");
}

/** "key: value" lines, keys aligned; undefined values are left out. */
export function renderFields(fields: [string, string | undefined][]): string {
  const shown = fields.filter((f): f is [string, string] => f[1] !== undefined);
  const width = Math.max(0, ...shown.map(([k]) => k.length));
  return shown.map(([k, v]) => `${`${k}:`.padEnd(width + 1)} ${clean(v)}`).join("\n");
}

/** Control characters from the API's strings never reach the terminal as escapes. */
const clean = (s: string) => s.replace(/[\u0000-\u0008\u000b-\u001f\u007f\u009b]/g, "?");

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return "-";
  let value = n;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)} ${UNITS[unit]}`;
}

/** 0:42, 12:05, 1:02:03 */
export function formatClock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
}

/** 850ms, 4.2s, 3m 10s, 15m, 2h 5m, 4d 1h */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "-";
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const [big, small, units] = s < 3600 ? [Math.floor(s / 60), Math.floor(s % 60), "ms"] : s < 86400
    ? [Math.floor(s / 3600), Math.floor((s % 3600) / 60), "hm"]
    : [Math.floor(s / 86400), Math.floor((s % 86400) / 3600), "dh"];
  return small ? `${big}${units[0]} ${small}${units[1]}` : `${big}${units[0]}`;
}

/** How long ago an ISO time was: "3m ago", "2h 5m ago", "4d 1h ago". */
export function formatAge(iso: string | null | undefined, now: number): string {
  if (!iso) return "-";
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const ms = now - t;
  if (ms < 0) return "just now";
  return ms < 60_000 ? `${Math.round(ms / 1000)}s ago` : `${formatDuration(ms)} ago`;
}

export function formatMinutes(m: number | null | undefined): string {
  if (m === null || m === undefined) return "-";
  return m < 1 ? `${Math.round(m * 60)}s` : formatDuration(m * 60_000);
}

/** A short form of an ISO time for tables: 2026-11-27 16:33:07Z. */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return "-";
  return iso.replace("T", " ").replace(/\.\d+Z$/, "Z");
}
