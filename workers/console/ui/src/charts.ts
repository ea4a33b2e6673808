// The console's charts, drawn by uPlot (npm "uplot"; bundled by workers/console/ui/build.ts).
import uPlot from "uplot";
import { bytes, h, seconds } from "./dom.ts";

export interface SeriesSpec { label: string; values: (number | null)[]; color: string; dash?: number[] }

interface ChartSpec {
  title: string;
  /** Times in seconds since the epoch, ascending. */
  xs: number[];
  series: SeriesSpec[];
  unit: "bytes" | "seconds" | "minutes";
  /** The time window drawn (seconds since the epoch), so one point still sits in its place in the window. */
  window: [number, number];
  /** A horizontal target line (e.g. the RPO target), in the chart's unit. */
  target?: { label: string; value: number };
  points?: boolean;
  empty: string;
}

const format = (unit: ChartSpec["unit"], v: number | null) =>
  v === null ? "—" : unit === "bytes" ? bytes(v) : unit === "seconds" ? seconds(v) : seconds(v * 60);

const live = new Set<{ chart: uPlot; box: HTMLElement }>();
let observer: ResizeObserver | undefined;

function sizeOf(box: HTMLElement) {
  return { width: Math.max(260, box.clientWidth - 16), height: 220 };
}

/** Drops the charts of a page left behind. */
export function disposeCharts(): void {
  for (const c of live) c.chart.destroy();
  live.clear();
}

export function chart(spec: ChartSpec): HTMLElement {
  const box = h("figure", { class: "chart", "aria-label": spec.title }, h("h3", {}, spec.title));
  // The window ends at this browser's now, or at the newest point if the server's clock runs ahead: x values stay in order.
  const span: [number, number] = [Math.min(spec.window[0], spec.xs[0] ?? Infinity), Math.max(spec.window[1], spec.xs.at(-1) ?? 0)];
  if (spec.xs.length === 0) {
    box.appendChild(h("p", { class: "empty" }, spec.empty));
    return box;
  }
  // Summarise for screen readers what the picture shows.
  const last = spec.series.map((s) => `${s.label} ${format(spec.unit, s.values[s.values.length - 1] ?? null)}`).join(", ");
  box.appendChild(h("figcaption", { class: "visually-hidden" }, `${spec.xs.length} points; latest: ${last}`));
  const series: uPlot.Series[] = [{}, ...spec.series.map((s) => ({
    label: s.label, stroke: s.color, width: 2, ...(s.dash ? { dash: s.dash } : {}),
    value: (_u: uPlot, v: number | null) => format(spec.unit, v),
    points: { show: spec.points ?? spec.xs.length < 40 },
  }))];
  let data: (number | null)[][] = [spec.xs, ...spec.series.map((s) => s.values)];
  if (spec.target) {
    // The target spans the whole window: its two ends are extra x values where the measured series have no value.
    series.push({ label: spec.target.label, stroke: "#b3261e", width: 1, dash: [6, 4], points: { show: false }, value: (_u, v) => format(spec.unit, v) });
    const [from, to] = span;
    data = [[from, ...spec.xs, to], ...data.slice(1).map((values) => [null, ...values, null]), [spec.xs, from, to].flat().map(() => spec.target!.value)];
  }
  const holder = h("div", {});
  box.appendChild(holder);
  // Drawn once the box is in the page, so it knows its width.
  requestAnimationFrame(() => {
    const chart = new uPlot({
      ...sizeOf(box), series, scales: { x: { time: true, range: () => span } },
      axes: [{}, { values: (_u, vals) => vals.map((v) => format(spec.unit, v)), size: 86 }],
      cursor: { focus: { prox: 16 } },
    }, data as uPlot.AlignedData, holder);
    const entry = { chart, box };
    live.add(entry);
    observer ??= new ResizeObserver(() => { for (const c of live) c.chart.setSize(sizeOf(c.box)); });
    observer.observe(box);
  });
  return box;
}

export const toSeconds = (iso: string) => Date.parse(iso) / 1000;
