// The whole system on one machine: the Worker under `wrangler dev` (local R2,
// D1 and Queues in workerd) and the runner as a plain Node process. Used by
// `npm start`, the end-to-end tests and the benchmarks, so all three run the
// same thing.
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { formatVars } from "./secrets.ts";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const WRANGLER = join(dirname(createRequire(import.meta.url).resolve("wrangler/package.json")), "bin/wrangler.js");

/**
 * How the runner process is started, here and in runner/Dockerfile (keep the
 * two alike). Backups churn through many 64 KiB Buffers: a small young
 * generation collects them early, and glibc returns freed blocks instead of
 * keeping them in per-thread arenas. Together they took a 1 GB backup's peak
 * RSS from ~315 MiB to ~205 MiB in a measurement on this machine. One arena,
 * not two, since backups seal on a worker thread (runner/repository/seal-thread.ts):
 * the thread would otherwise get an arena of its own. On the restore path a
 * larger young generation buys nothing now that it reuses its buffers
 * (`bench/restore-path.ts --semi 1,2,4`: ~6.1, 6.5, 6.7 CPU-s per GiB,
 * peak RSS 118, 123, 137 MiB).
 */
export const RUNNER_NODE_FLAGS = ["--max-semi-space-size=1"];
export const RUNNER_MALLOC_ENV = { MALLOC_ARENA_MAX: "1", MALLOC_MMAP_THRESHOLD_: "65536", MALLOC_TRIM_THRESHOLD_: "131072" };

export interface StackOptions {
  /** Holds the local state (R2, D1, Queues), the effective vars file and logs. */
  dir: string;
  workerPort: number;
  runnerPort: number;
  /** Config and secrets for the Worker, as .dev.vars would hold them. */
  vars: Record<string, string>;
  /** Extra environment for the runner process. */
  runnerEnv?: Record<string, string>;
  /** "inherit" prints both processes' output; otherwise it goes to files in dir. */
  output?: "inherit" | "files";
}

export interface Stack {
  workerUrl: string;
  runnerUrl: string;
  persistDir: string;
  /** Starts the runner (again); `env` adds to StackOptions.runnerEnv for this process only. */
  startRunner(env?: Record<string, string>): Promise<void>;
  killRunner(signal?: NodeJS.Signals): Promise<void>;
  runnerPid(): number | undefined;
  stop(): Promise<void>;
}

export async function startStack(opts: StackOptions): Promise<Stack> {
  mkdirSync(opts.dir, { recursive: true });
  const persistDir = join(opts.dir, "state");
  const workerUrl = `http://127.0.0.1:${opts.workerPort}`;
  const runnerUrl = `http://127.0.0.1:${opts.runnerPort}`;
  const envFile = join(opts.dir, "worker.vars");
  const vars: Record<string, string> = { RUNNER_URL: runnerUrl, REPOSITORY_URL: `${workerUrl}/repo/v1`, ...opts.vars };
  writeFileSync(envFile, formatVars(vars), { mode: 0o600 });
  const stdio = (name: string) => (opts.output === "inherit" ? "inherit" : openSync(join(opts.dir, `${name}.log`), "a"));

  await prepareCatalog(persistDir, stdio("migrations"));

  let runner: ChildProcess | undefined;
  const startRunner = async (env: Record<string, string> = {}) => {
    runner = spawn(process.execPath, [...RUNNER_NODE_FLAGS, join(ROOT, "runner/server.ts")], {
      cwd: ROOT, stdio: ["ignore", stdio("runner"), stdio("runner")],
      env: { ...process.env, ...RUNNER_MALLOC_ENV, ...opts.runnerEnv, ...env, RUNNER_TOKEN: vars.RUNNER_TOKEN ?? "", PORT: String(opts.runnerPort), HOST: "127.0.0.1" },
    });
    await waitFor(`${runnerUrl}/health`, runner);
  };
  const runnerUp = startRunner();
  const worker = spawn(process.execPath, [
    WRANGLER, "dev", "--local", "--ip", "127.0.0.1", "--port", String(opts.workerPort), "--persist-to", persistDir,
    "--env-file", envFile, "--test-scheduled", "--show-interactive-dev-session=false", "--inspector-port", "0",
  ], { cwd: ROOT, stdio: ["ignore", stdio("worker"), stdio("worker")], env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "1" } });
  // Both start at once: the Worker calls the runner only when it dispatches a job.
  await Promise.all([runnerUp, waitFor(`${workerUrl}/health`, worker, 90_000)]);

  const killRunner = async (signal: NodeJS.Signals = "SIGKILL") => {
    if (!runner || runner.exitCode !== null || runner.signalCode !== null) return;
    const exited = new Promise((r) => runner!.once("exit", r));
    runner.kill(signal);
    await exited;
  };
  return {
    workerUrl, runnerUrl, persistDir, startRunner, killRunner,
    runnerPid: () => runner?.pid,
    async stop() {
      await killRunner("SIGTERM");
      if (worker.exitCode === null && worker.signalCode === null) {
        const exited = new Promise((r) => worker.once("exit", r));
        worker.kill("SIGTERM");
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
        if (worker.exitCode === null && worker.signalCode === null) worker.kill("SIGKILL");
      }
    },
  };
}

/**
 * The local catalog (D1) at the newest migration. State that exists already
 * (npm start's, a restarted stack's) is migrated in place. A new one is a copy
 * of a catalog migrated once per set of migrations and wrangler version, kept
 * in .cache/: `wrangler d1 migrations apply` costs ~5 CPU-seconds, and the
 * tests start some thirty stacks.
 */
async function prepareCatalog(persistDir: string, out: "inherit" | number): Promise<void> {
  const migrate = (dir: string) => run(process.execPath, [WRANGLER, "d1", "migrations", "apply", "CATALOG", "--local", "--persist-to", dir], out);
  const d1 = join(persistDir, "v3", "d1");
  if (existsSync(d1)) return migrate(persistDir);
  const migrations = join(ROOT, "migrations");
  const hash = createHash("sha256").update(readFileSync(join(dirname(WRANGLER), "..", "package.json")))
    .update(readFileSync(join(ROOT, "wrangler.toml")));
  for (const file of readdirSync(migrations).filter((f) => f.endsWith(".sql")).sort()) hash.update(file).update(readFileSync(join(migrations, file)));
  const template = join(ROOT, ".cache", `d1-${hash.digest("hex").slice(0, 16)}`);
  if (!existsSync(template)) {
    mkdirSync(join(ROOT, ".cache"), { recursive: true });
    const scratch = mkdtempSync(join(ROOT, ".cache", "d1-part-"));
    try {
      await migrate(scratch);
      try {
        renameSync(join(scratch, "v3", "d1"), template);
      } catch {
        // another process made it meanwhile: the same migrations, the same catalog
      }
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  }
  cpSync(template, d1, { recursive: true });
}

function run(cmd: string, args: string[], out: "inherit" | number): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, stdio: ["ignore", out, out], env: { ...process.env, CI: "1", WRANGLER_SEND_METRICS: "false" } });
    child.once("error", reject);
    child.once("exit", (code) => (code === 0 ? resolvePromise() : reject(new Error(`${args.slice(1, 4).join(" ")} exited ${code}`))));
  });
}

async function waitFor(url: string, child: ChildProcess, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${url}: process exited with ${child.exitCode} before answering`);
    try {
      const res = await fetch(url);
      if (res.ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${url} did not answer within ${timeoutMs / 1000}s`);
}

/** A free TCP port on loopback. */
export async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((resolvePromise, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolvePromise(typeof address === "object" && address ? address.port : 0));
    });
  });
}
