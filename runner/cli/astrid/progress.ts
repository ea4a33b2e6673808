// The live progress of a job: a bar with rate and ETA on a terminal, plain
// lines otherwise (logs, CI, pipes). The rate is measured over the last few
// samples, so a stall shows as a falling rate rather than an average that
// hides it. Everything that decides what is shown takes the time as an
// argument: the rendering is a pure function tests can check.
import { formatBytes, formatClock } from "./table.ts";

export interface JobProgressReport {
  phase: string;
  bytes: number;
  chunks: number;
}

/** What the bar measures against: the backup's size for a restore or verify, the previous backup's for a backup (an estimate). */
export interface ProgressTotals {
  bytes?: number;
  chunks?: number;
  /** The totals are a guess (e.g. the previous backup's size): the ETA says "~". */
  estimate?: boolean;
}

interface Sample {
  at: number;
  value: number;
}

const WINDOW_MS = 10_000;

export class ProgressMeter {
  private samples: Sample[] = [];
  private unit: "bytes" | "chunks" | undefined;

  private readonly totals: ProgressTotals;

  constructor(totals: ProgressTotals = {}) {
    this.totals = totals;
  }

  /** Takes a report made at `at` (ms); the measured quantity is bytes when they move, else chunks. */
  add(report: JobProgressReport, at: number): void {
    const unit = report.bytes > 0 || !report.chunks ? "bytes" : "chunks";
    if (unit !== this.unit) {
      this.unit = unit;
      this.samples = [];
    }
    const value = unit === "bytes" ? report.bytes : report.chunks;
    const last = this.samples.at(-1);
    if (last && value < last.value) this.samples = []; // a new phase started counting again
    this.samples.push({ at, value });
    while (this.samples.length > 2 && at - this.samples[0]!.at > WINDOW_MS) this.samples.shift();
  }

  /** Units per second over the window; undefined until two samples a moment apart. */
  rate(): number | undefined {
    const first = this.samples[0];
    const last = this.samples.at(-1);
    if (!first || !last || last.at - first.at < 500) return undefined;
    return ((last.value - first.value) * 1000) / (last.at - first.at);
  }

  state() {
    const unit = this.unit ?? "bytes";
    const done = this.samples.at(-1)?.value ?? 0;
    const total = unit === "bytes" ? this.totals.bytes : this.totals.chunks;
    const rate = this.rate();
    const fraction = total ? Math.min(1, done / total) : undefined;
    const eta = total && rate && rate > 0 ? Math.max(0, (total - done) / rate) : undefined;
    return { unit, done, total, rate, fraction, eta, estimate: this.totals.estimate ?? false };
  }
}

export type MeterState = ReturnType<ProgressMeter["state"]>;

const amount = (unit: "bytes" | "chunks", n: number) => (unit === "bytes" ? formatBytes(n) : `${Math.round(n)} chunks`);

/** One terminal line: "[#####.......]  41%  120 MiB / 290 MiB  12.3 MiB/s  ETA 0:14  dumping". */
export function progressLine(phase: string, s: MeterState, width = 24): string {
  const bar = s.fraction === undefined
    ? `[${"?".repeat(width)}]`
    : `[${"#".repeat(Math.round(s.fraction * width)).padEnd(width, ".")}]`;
  const pct = s.fraction === undefined ? "   ?" : `${Math.floor(s.fraction * 100)}%`.padStart(4);
  const size = s.total ? `${amount(s.unit, s.done)} / ${s.estimate ? "~" : ""}${amount(s.unit, s.total)}` : amount(s.unit, s.done);
  const rate = s.rate === undefined ? "-" : `${amount(s.unit, s.rate)}/s`;
  const eta = s.eta === undefined ? "ETA -" : `ETA ${s.estimate ? "~" : ""}${formatClock(s.eta)}`;
  return `${bar} ${pct}  ${size}  ${rate}  ${eta}  ${phase}`;
}

/** One log line, for output that is not a terminal. */
export function plainLine(jobId: string, status: string, phase: string | undefined, s: MeterState): string {
  if (!phase) return `job ${jobId}: ${status}`;
  const rate = s.rate === undefined ? "" : `, ${amount(s.unit, s.rate)}/s`;
  const pct = s.fraction === undefined ? "" : ` (${Math.floor(s.fraction * 100)}%)`;
  return `job ${jobId}: ${status}, ${phase}, ${amount(s.unit, s.done)}${pct}${rate}`;
}
