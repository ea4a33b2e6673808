// Running the scripts docs/format.md prints, exactly as printed: tests take
// them from the document so the two cannot drift apart.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { ROOT } from "../../runner/dev/stack.ts";

export const WRANGLER = join(dirname(createRequire(import.meta.url).resolve("wrangler/package.json")), "bin/wrangler.js");

/** A script as docs/format.md prints it: the bash block after `<!-- script: NAME -->`. */
export function scriptFromDoc(name: string): string {
  const doc = readFileSync(join(ROOT, "docs/format.md"), "utf8");
  const marker = `<!-- script: ${name} -->`;
  const at = doc.indexOf(marker);
  if (at < 0) throw new Error(`docs/format.md has no ${marker}`);
  const block = /^```bash\n([\s\S]*?)^```$/m.exec(doc.slice(at + marker.length));
  if (!block) throw new Error(`docs/format.md: no bash block after ${marker}`);
  return block[1]!;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.once("error", reject);
    child.once("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

export function succeeded(what: string, r: RunResult): RunResult {
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}\n${r.stderr.slice(-3000)}`);
  return r;
}
