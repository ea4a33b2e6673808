// A real S3-compatible server for tests and benchmarks: moto_server from PyPI,
// installed once into a virtualenv under the repo's .cache/ (gitignored) and
// started on a free loopback port. R2's S3 API cannot run locally with
// lifecycle rules, and a hand-written fake would only agree with our own
// reading of S3; moto is an independent implementation of the protocol.
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { freePort } from "./stack.ts";
import { ensurePipVenv } from "./venv.ts";

/** Pinned: tests depend on its behaviour (error codes, lifecycle XML round trip). */
export const MOTO_VERSION = "5.2.5";

export interface MotoServer {
  url: string;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Installs moto[server] if it is not there yet and returns the moto_server path. */
export async function ensureMoto(): Promise<string> {
  return join(await ensurePipVenv("moto", MOTO_VERSION, `moto[server]==${MOTO_VERSION}`), "moto_server");
}

/**
 * Starts a moto_server and waits until it answers. `env` reaches the server,
 * e.g. INITIAL_NO_AUTH_ACTION_COUNT to make it check signatures.
 */
export async function startMoto(opts: { env?: Record<string, string> } = {}): Promise<MotoServer> {
  const bin = await ensureMoto();
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(bin, ["-H", "127.0.0.1", "-p", String(port)], {
    env: { ...process.env, ...opts.env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => void (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`moto_server exited with ${child.exitCode}: ${stderr}`);
    try {
      // The moto-api endpoint answers without a signature, whatever the auth setting.
      const res = await fetch(`${url}/moto-api/data.json`);
      if (res.ok) {
        await res.arrayBuffer();
        break;
      }
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`moto_server did not answer on ${url} within 60 s: ${stderr}`);
    }
    await sleep(100);
  }
  return {
    url,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill("SIGTERM");
      await Promise.race([exited, sleep(5000)]);
      if (child.exitCode === null) child.kill("SIGKILL");
    },
  };
}
