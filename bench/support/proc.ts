// Linux /proc readings for the benchmarks: a process's resident memory, and
// CPU time per role (runner, Worker, PostgreSQL, ...) between two snapshots.
import { readdirSync, readFileSync } from "node:fs";

const CLK_TCK = 100; // USER_HZ; 100 on every Linux the runner targets

/** A field of /proc/<pid>/status in bytes (VmRSS, VmHWM), or undefined once the process is gone. */
export function statusBytes(pid: number, field: "VmRSS" | "VmHWM"): number | undefined {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

export interface RssSampler {
  stop(): { peak_rss_sampled_bytes: number; vm_hwm_bytes: number | undefined; samples: number };
}

/** Samples VmRSS every intervalMs; stop() also reads VmHWM (the kernel's own peak). */
export function sampleRss(pid: number, intervalMs = 50): RssSampler {
  let peak = 0;
  let samples = 0;
  const take = () => {
    const rss = statusBytes(pid, "VmRSS");
    if (rss !== undefined) {
      samples++;
      if (rss > peak) peak = rss;
    }
  };
  take();
  const timer = setInterval(take, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      take();
      return { peak_rss_sampled_bytes: peak, vm_hwm_bytes: statusBytes(pid, "VmHWM"), samples };
    },
  };
}

interface ProcStat {
  pid: number;
  ppid: number;
  comm: string;
  /** utime + stime, seconds. */
  self: number;
  /** cutime + cstime: reaped children, seconds. */
  reaped: number;
}

function readStat(pid: number): ProcStat | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    const open = text.indexOf("(");
    const close = text.lastIndexOf(")");
    const rest = text.slice(close + 2).split(" ");
    const n = (i: number) => Number(rest[i]) / CLK_TCK;
    return { pid, ppid: Number(rest[1]), comm: text.slice(open + 1, close), self: n(11) + n(12), reaped: n(13) + n(14) };
  } catch {
    return undefined;
  }
}

function allStats(): ProcStat[] {
  const stats: ProcStat[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const s = readStat(Number(name));
    if (s) stats.push(s);
  }
  return stats;
}

/** CPU seconds by role. A process's reaped children count under "<role> children". */
export type CpuByRole = Record<string, number>;

/**
 * Snapshot of CPU used so far by this process's descendants (grouped into
 * roles by `roleOf`) and by the PostgreSQL server. Exited processes are
 * covered by their parent's cutime, so the difference of two snapshots is
 * exactly the CPU spent in between, as long as parents reap their children.
 * Roles in foldChildren count their reaped children under their own name.
 */
export function cpuSnapshot(roleOf: (s: { pid: number; comm: string }) => string, foldChildren: ReadonlySet<string> = new Set()): CpuByRole {
  const stats = allStats();
  const children = new Map<number, ProcStat[]>();
  for (const s of stats) {
    const list = children.get(s.ppid) ?? [];
    list.push(s);
    children.set(s.ppid, list);
  }
  const out: CpuByRole = {};
  const add = (key: string, v: number) => (out[key] = (out[key] ?? 0) + v);
  const visit = (s: ProcStat) => {
    const role = roleOf(s);
    add(role, s.self);
    // Folded roles keep reaped children under their own name: e.g. a Worker
    // whose workerd wrangler restarted stays one figure instead of moving
    // from "workerd" to "wrangler children" half-way through a phase.
    add(foldChildren.has(role) ? role : `${role} children`, s.reaped);
    for (const c of children.get(s.pid) ?? []) visit(c);
  };
  const self = stats.find((s) => s.pid === process.pid);
  if (self) visit(self);
  // The PostgreSQL server: backends serving pg_dump/pg_restore are reaped by the postmaster.
  for (const s of stats) {
    if (s.comm === "postgres" || s.comm.startsWith("postgres:")) {
      add("postgres server", s.self + s.reaped);
    }
  }
  return out;
}

export function cpuDelta(before: CpuByRole, after: CpuByRole): CpuByRole {
  const out: CpuByRole = {};
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const d = (after[key] ?? 0) - (before[key] ?? 0);
    if (Math.abs(d) >= 0.005) out[key] = Math.round(d * 100) / 100;
  }
  return out;
}

/** Whole-machine CPU counters from /proc/stat, in seconds. */
export function machineCpu(): { busy: number; total: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0); // idle + iowait
  return { busy: (total - idle) / CLK_TCK, total: total / CLK_TCK };
}

export function loadAverage(): number {
  return Number(readFileSync("/proc/loadavg", "utf8").split(" ")[0]);
}

/** Pids of this process's descendants with the given comm (e.g. workerd). */
export function descendantPids(comm: string): number[] {
  const stats = allStats();
  const parent = new Map(stats.map((s) => [s.pid, s.ppid]));
  const isOurs = (pid: number): boolean => {
    for (let p = parent.get(pid), hops = 0; p !== undefined && hops < 64; p = parent.get(p), hops++) if (p === process.pid) return true;
    return false;
  };
  return stats.filter((s) => s.comm === comm && isOurs(s.pid)).map((s) => s.pid);
}
