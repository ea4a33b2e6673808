// Dev/test MLflow: a pinned MLflow installed with pip into a cached virtualenv
// under .cache/ (created on first use, e.g. on a clean CI clone), and real
// `mlflow server` processes on free loopback ports. The product never runs
// Python: only the tests and the benchmark use this, to have a server to
// back up and restore into.
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./stack.ts";
import { ensurePipVenv } from "./venv.ts";

export const MLFLOW_VERSION = "3.17.2";

/** The virtualenv's bin directory, installing MLflow (and any extra pip packages) on first use. */
export function ensureMlflow(extra: string[] = []): Promise<string> {
  return ensurePipVenv("mlflow", MLFLOW_VERSION, `mlflow==${MLFLOW_VERSION}`, extra);
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
