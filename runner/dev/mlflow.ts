// Dev/test MLflow: a pinned MLflow installed with pip into a cached virtualenv
// under .cache/ (created on first use, e.g. on a clean CI clone), and real
// `mlflow server` processes on free loopback ports. The product never runs
// Python: only the tests and the benchmark use this, to have a server to
// back up and restore into.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, ROOT } from "./stack.ts";

export const MLFLOW_VERSION = "3.17.2";
const VENV = join(ROOT, ".cache", `mlflow-${MLFLOW_VERSION}`);
const READY = join(VENV, ".installed");
const LOCK = join(ROOT, ".cache", `mlflow-${MLFLOW_VERSION}.lock`);

/** The virtualenv's bin directory, installing MLflow (and any extra pip packages) on first use. */
export async function ensureMlflow(extra: string[] = []): Promise<string> {
  const bin = join(VENV, "bin");
  if (!existsSync(READY)) await underLock(() => {
    if (existsSync(READY)) return;
    rmSync(VENV, { recursive: true, force: true });
    mkdirSync(join(ROOT, ".cache"), { recursive: true });
    const python = process.env.PYTHON ?? "python3";
    sh(python, ["-m", "venv", VENV]);
    sh(join(bin, "pip"), ["install", "--quiet", "--disable-pip-version-check", `mlflow==${MLFLOW_VERSION}`]);
    writeFileSync(READY, `${MLFLOW_VERSION}\n`);
  });
  for (const pkg of extra) {
    const marker = join(VENV, `.installed-${pkg.replace(/[^A-Za-z0-9._-]/g, "_")}`);
    if (!existsSync(marker)) await underLock(() => {
      if (existsSync(marker)) return;
      sh(join(bin, "pip"), ["install", "--quiet", "--disable-pip-version-check", pkg]);
      writeFileSync(marker, "ok\n");
    });
  }
  return bin;
}

function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { stdio: ["ignore", "inherit", "inherit"], timeout: 15 * 60_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.error?.message ?? `exit ${r.status}`})`);
}

/** One installer at a time across processes (vitest workers, a bench run alongside). */
async function underLock(fn: () => void): Promise<void> {
  mkdirSync(join(ROOT, ".cache"), { recursive: true });
  const deadline = Date.now() + 20 * 60_000;
  for (;;) {
    try {
      closeSync(openSync(LOCK, "wx"));
      break;
    } catch {
      // A lock older than the longest install is a crashed installer's.
      try {
        if (Date.now() - statSync(LOCK).mtimeMs > 20 * 60_000) rmSync(LOCK, { force: true });
      } catch {
        // gone meanwhile
      }
      if (Date.now() > deadline) throw new Error(`${LOCK}: another install did not finish`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  try {
    fn();
  } finally {
    rmSync(LOCK, { force: true });
  }
}

export interface MlflowServer {
  url: string;
  port: number;
  dir: string;
  /** Stops the server and deletes its store and artifacts. */
  stop(): Promise<void>;
  /** Stops the server, deletes everything it held, and starts it empty on the same port. */
  wipe(): Promise<void>;
}

/** Starts `mlflow server` (SQLite store, proxied artifacts; one worker unless asked) on a free loopback port and waits for /health. */
export async function startMlflow(opts: { port?: number; dir?: string; log?: string; workers?: number } = {}): Promise<MlflowServer> {
  const bin = await ensureMlflow();
  const port = opts.port ?? (await freePort());
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), "astrid-mlflow-"));
  let child: ChildProcess | undefined;
  const start = async () => {
    mkdirSync(join(dir, "artifacts"), { recursive: true });
    const out = openSync(opts.log ?? join(dir, "server.log"), "a");
    child = spawn(join(bin, "mlflow"), [
      "server", "--backend-store-uri", `sqlite:///${join(dir, "mlflow.db")}`, "--artifacts-destination", join(dir, "artifacts"),
      "--serve-artifacts", "--host", "127.0.0.1", "--port", String(port), "--workers", String(opts.workers ?? 1),
    ], { stdio: ["ignore", out, out], env: { ...process.env, MLFLOW_SERVER_ENABLE_JOB_EXECUTION: "false" }, detached: true });
    closeSync(out);
    const deadline = Date.now() + 120_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`mlflow server exited with ${child.exitCode} (log: ${dir}/server.log)`);
      try {
        if ((await fetch(`http://127.0.0.1:${port}/health`)).ok) return;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) throw new Error(`mlflow server on port ${port} did not answer /health in 120 s`);
      await new Promise((r) => setTimeout(r, 300));
    }
  };
  const halt = async () => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once("exit", r));
    try {
      process.kill(-c.pid!, "SIGTERM"); // the server's own process group: gunicorn/uvicorn workers too
    } catch {
      c.kill("SIGTERM");
    }
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (c.exitCode === null && c.signalCode === null) {
      try {
        process.kill(-c.pid!, "SIGKILL");
      } catch {
        // already gone
      }
    }
  };
  await start();
  return {
    url: `http://127.0.0.1:${port}`, port, dir,
    async stop() {
      await halt();
      if (!opts.dir) rmSync(dir, { recursive: true, force: true });
    },
    async wipe() {
      await halt();
      rmSync(join(dir, "mlflow.db"), { force: true });
      rmSync(join(dir, "artifacts"), { recursive: true, force: true });
      await start();
    },
  };
}

if (import.meta.main) {
  const server = await startMlflow({ port: Number(process.env.PORT ?? 0) || undefined });
  console.log(`mlflow ${MLFLOW_VERSION} at ${server.url} (store ${server.dir}); Ctrl-C stops it`);
  process.once("SIGINT", () => void server.stop().then(() => process.exit(0)));
}
