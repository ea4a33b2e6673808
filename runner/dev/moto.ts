// A real S3-compatible server for tests and benchmarks: moto_server from PyPI,
// installed once into a virtualenv under the repo's .cache/ (gitignored) and
// started on a free loopback port. R2's S3 API cannot run locally with
// lifecycle rules, and a hand-written fake would only agree with our own
// reading of S3; moto is an independent implementation of the protocol.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, ROOT } from "./stack.ts";

/** Pinned: tests depend on its behaviour (error codes, lifecycle XML round trip). */
export const MOTO_VERSION = "5.2.5";

export interface MotoServer {
  url: string;
  stop(): Promise<void>;
}

const venvDir = () => join(ROOT, ".cache", `moto-${MOTO_VERSION}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Installs moto[server] if it is not there yet and returns the moto_server
 * path. Safe when several processes call it at once: a lock directory (mkdir
 * is atomic) admits one installer; the others wait for its marker file.
 */
export async function ensureMoto(): Promise<string> {
  const dir = venvDir();
  const bin = join(dir, "bin", "moto_server");
  const marker = join(dir, ".installed");
  const lock = `${dir}.lock`;
  mkdirSync(join(ROOT, ".cache"), { recursive: true });
  const deadline = Date.now() + 10 * 60_000;
  while (!existsSync(marker)) {
    try {
      mkdirSync(lock);
    } catch {
      // Another process installs; a lock older than 10 minutes is from one that died.
      try {
        if (Date.now() - statSync(lock).mtimeMs > 10 * 60_000) rmSync(lock, { recursive: true, force: true });
      } catch {
        // the lock went away meanwhile
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for another moto install (${lock})`);
      await sleep(500);
      continue;
    }
    try {
      if (existsSync(marker)) break;
      rmSync(dir, { recursive: true, force: true });
      run("python3", ["-m", "venv", dir]);
      run(join(dir, "bin", "pip"), ["install", "--quiet", "--disable-pip-version-check", `moto[server]==${MOTO_VERSION}`]);
      writeFileSync(marker, `${MOTO_VERSION}\n`);
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  }
  return bin;
}

function run(cmd: string, args: string[]): void {
  const result = spawnSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 9 * 60_000 });
  if (result.status !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} failed (${result.status ?? result.signal}): ${(result.stderr || result.error?.message || "").slice(-2000)}`);
  }
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
