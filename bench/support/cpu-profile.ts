// Summarises a V8 .cpuprofile (node --cpu-prof): self time by function and by
// coarse stage (chunking, age/ChaCha20, zstd, hashing, HTTP, GC, idle ...).
// Usable on its own: npm exec -- node bench/support/cpu-profile.ts FILE...
import { readFileSync } from "node:fs";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  total_ms: number;
  by_stage: { stage: string; ms: number; pct: number }[];
  top_functions: { fn: string; ms: number; pct: number }[];
}

/** Where a function belongs in the pipeline, judged by its source file. */
function stageOf(f: CallFrame): string {
  const { url, functionName: fn } = f;
  if (fn === "(idle)") return "idle";
  if (fn === "(garbage collector)") return "gc";
  if (fn === "(program)") return "program (native/V8)";
  if (url.includes("@noble/ciphers")) return "age: chacha20poly1305 (noble, JS)";
  if (url.includes("@noble/hashes")) return "age: hashes (noble, JS)";
  if (url.includes("@noble/curves")) return "age: x25519 (noble, JS)";
  if (url.includes("age-encryption")) return "age: framing/streams";
  if (url.includes("repository/chunker")) return "chunker (CDC)";
  if (url.includes("repository/codec")) return "codec (hmac/sha/zstd calls)";
  if (/undici|node:internal\/deps\/undici|fetch/.test(url)) return "fetch/undici (HTTP)";
  if (url.includes("webstreams")) return "web streams";
  if (url.includes("node:internal/streams") || url.includes("node:stream")) return "node streams";
  if (url.includes("node:internal/crypto")) return "node crypto (bindings)";
  if (url.includes("zlib")) return "zlib/zstd (bindings)";
  if (url.includes("/runner/")) return `runner: ${url.replace(/^.*\/runner\//, "")}`;
  if (url.includes("hono")) return "hono (HTTP server)";
  if (fn === "" && url === "") return "(anonymous/native)";
  if (url.startsWith("node:")) return "node internals";
  return "other JS";
}

export function summarizeProfile(profile: Profile, top = 15): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const stages = new Map<string, number>();
  const fns = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const f = byId.get(id)!.callFrame;
    const stage = stageOf(f);
    stages.set(stage, (stages.get(stage) ?? 0) + us);
    const file = f.url.replace(/^.*node_modules\//, "").replace(/^file:\/\/.*\/(runner|workers)\//, "$1/");
    const key = `${f.functionName || "(anonymous)"} ${file ? `${file}:${f.lineNumber + 1}` : ""}`.trim();
    fns.set(key, (fns.get(key) ?? 0) + us);
  }
  const rank = (m: Map<string, number>) =>
    [...m].sort((a, b) => b[1] - a[1]).map(([k, us]) => ({ k, ms: Math.round(us / 1000), pct: Math.round((1000 * us) / total) / 10 }));
  return {
    total_ms: Math.round(total / 1000),
    by_stage: rank(stages).map(({ k, ms, pct }) => ({ stage: k, ms, pct })),
    top_functions: rank(fns).slice(0, top).map(({ k, ms, pct }) => ({ fn: k, ms, pct })),
  };
}

export function summarizeProfileFile(path: string, top?: number): ProfileSummary {
  return summarizeProfile(JSON.parse(readFileSync(path, "utf8")) as Profile, top);
}

export function formatSummary(s: ProfileSummary): string {
  const lines = [`  total sampled: ${(s.total_ms / 1000).toFixed(1)} s`, "  by stage:"];
  for (const r of s.by_stage.filter((r) => r.pct >= 0.5)) lines.push(`    ${r.pct.toFixed(1).padStart(5)}%  ${(r.ms / 1000).toFixed(1).padStart(6)} s  ${r.stage}`);
  lines.push("  top functions (self time):");
  for (const r of s.top_functions) lines.push(`    ${r.pct.toFixed(1).padStart(5)}%  ${(r.ms / 1000).toFixed(1).padStart(6)} s  ${r.fn}`);
  return lines.join("\n");
}

if (import.meta.main) {
  for (const file of process.argv.slice(2)) {
    console.log(file);
    console.log(formatSummary(summarizeProfileFile(file, 25)));
  }
}
