// Running the scripts docs/format.md prints, exactly as printed: tests take
// them from the document so the two cannot drift apart.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { convertV4MiniflareOptions, Miniflare } from "miniflare";
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


/**
 * The documents' FETCH for a local stack's bucket: one Miniflare instance over
 * the stack's persisted state (the same store `wrangler r2 object get --local`
 * opens) serves GET /<key>, and FETCH is a curl of it, as a user's rclone or
 * aws s3 cp would be. One server per script run rather than one wrangler CLI
 * start per object: that start cost seconds of CPU for every object fetched.
 * Each key fetched is appended to $FETCH_LOG.
 */
export async function serveLocalBucket(persistDir: string, fetchLog: string, bucket = "astrid-backups"): Promise<{ env: Record<string, string>; close(): Promise<void> }> {
  const mf = new Miniflare(convertV4MiniflareOptions({
    modules: true,
    script: `export default {
      async fetch(request, env) {
        if (request.method !== "GET") return new Response(null, { status: 405 });
        const object = await env.BUCKET.get(decodeURIComponent(new URL(request.url).pathname.slice(1)));
        return object ? new Response(object.body) : new Response("no such key", { status: 404 });
      },
    };`,
    resourcePersistencePath: join(persistDir, "v3"),
    r2Buckets: { BUCKET: bucket },
  }));
  const url = (await mf.ready).toString();
  return {
    env: { FETCH_URL: url, FETCH_LOG: fetchLog, FETCH: 'echo "$1" >> "$FETCH_LOG"; curl -sSf -o "$2" "$FETCH_URL$1"' },
    close: () => mf.dispose(),
  };
}
