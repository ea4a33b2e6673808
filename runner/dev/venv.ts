// Pinned PyPI tools for tests and benchmarks (MLflow, moto, schemathesis):
// each is installed once into its own virtualenv under the repo's .cache/
// (gitignored), named by tool and version so a version bump installs afresh.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./stack.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Longer than any install takes: a lock this old is from an installer that died. */
const STALE_LOCK_MS = 20 * 60_000;

/**
 * Installs `pipSpec` into .cache/<name>-<version> if it is not there yet, then
 * each of `extra` (packages some callers add, e.g. a benchmark's peers), and
 * returns the virtualenv's bin directory. Safe when several processes call it
 * at once: a lock directory (mkdir is atomic) admits one installer; the others
 * wait for its marker file. The installs run as child processes without
 * blocking the event loop, so a test run can start one in the background.
 */
export async function ensurePipVenv(name: string, version: string, pipSpec: string, extra: string[] = []): Promise<string> {
  const dir = join(ROOT, ".cache", `${name}-${version}`);
  const bin = join(dir, "bin");
  await once(join(dir, ".installed"), `${dir}.lock`, async () => {
    rmSync(dir, { recursive: true, force: true });
    await run(process.env.PYTHON ?? "python3", ["-m", "venv", dir]);
    await run(join(bin, "pip"), ["install", "--quiet", "--disable-pip-version-check", pipSpec]);
  });
  for (const pkg of extra) {
    const marker = join(dir, `.installed-${pkg.replace(/[^A-Za-z0-9._-]/g, "_")}`);
    await once(marker, `${dir}.lock`, () => run(join(bin, "pip"), ["install", "--quiet", "--disable-pip-version-check", pkg]));
  }
  return bin;
}

/** Runs `install` unless `marker` exists, one process at a time; writes the marker when it succeeded. */
async function once(marker: string, lock: string, install: () => Promise<void>): Promise<void> {
  mkdirSync(join(ROOT, ".cache"), { recursive: true });
  const deadline = Date.now() + STALE_LOCK_MS;
  while (!existsSync(marker)) {
    try {
      mkdirSync(lock);
    } catch {
      try {
        if (Date.now() - statSync(lock).mtimeMs > STALE_LOCK_MS) rmSync(lock, { recursive: true, force: true });
      } catch {
        // the lock went away meanwhile
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for another install (${lock})`);
      await sleep(500);
      continue;
    }
    try {
      if (existsSync(marker)) break;
      await install();
      writeFileSync(marker, "ok\n");
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  }
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => void (stderr = (stderr + d).slice(-2000)));
    const timer = setTimeout(() => child.kill("SIGKILL"), 15 * 60_000);
    child.once("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`${cmd} ${args.join(" ")}: ${e.message}`));
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`${cmd} ${args.join(" ")} failed (${code ?? signal}): ${stderr}`));
    });
  });
}
