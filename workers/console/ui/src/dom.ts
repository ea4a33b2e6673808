// Building the page without innerHTML: every value from the API is text.

type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (typeof v === "function") el.addEventListener(k.replace(/^on/, ""), v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
  }
}

/** A table that turns into labelled cards at phone width (console.css). */
export function table(headers: string[], rows: Child[][], opts: { caption?: string; empty?: string } = {}): HTMLElement {
  if (rows.length === 0) return h("p", { class: "muted" }, opts.empty ?? "Nothing to show.");
  return h("div", { class: "table-wrap" },
    h("table", { class: "cards" },
      opts.caption ? h("caption", { class: "visually-hidden" }, opts.caption) : null,
      h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows.map((r) => h("tr", {}, r.map((cell, i) => h("td", { "data-label": headers[i] ?? "" }, cell)))))));
}

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) [v, u] = [v / 1024, u + 1];
  return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}

export function minutes(m: number | null | undefined): string {
  if (m === null || m === undefined) return "—";
  if (m < 10 / 60) return `${(m * 60).toFixed(1)} s`;
  if (m < 1) return `${Math.round(m * 60)} s`;
  if (m < 120) return `${Math.round(m)} min`;
  if (m < 48 * 60) return `${(m / 60).toFixed(1)} h`;
  return `${(m / 1440).toFixed(1)} d`;
}

export function seconds(s: number | null | undefined): string {
  return s === null || s === undefined ? "—" : minutes(s / 60);
}

export function when(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  return `${d.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

export function ago(iso: string | null | undefined): string {
  if (!iso) return "—";
  const m = (Date.now() - Date.parse(iso)) / 60_000;
  return m >= 0 ? `${minutes(m)} ago` : `in ${minutes(-m)}`;
}

export const chip = (tone: "red" | "amber" | "green" | "grey", text: string) => h("span", { class: `chip ${tone}` }, text);

export function link(href: string, text: string): HTMLAnchorElement {
  return h("a", { href }, text);
}
