// Pinned PyPI tools for tests and benchmarks (moto, schemathesis): each is
// installed once into its own virtualenv under the repo's .cache/
// (gitignored), named by tool and version so a version bump installs afresh.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./stack.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Installs `pipSpec` into .cache/<name>-<version> if it is not there yet and
 * returns the virtualenv's bin directory. Safe when several processes call it
 * at once: a lock directory (mkdir is atomic) admits one installer; the others
 * wait for its marker file.
 */
export async function ensurePipVenv(name: string, version: string, pipSpec: string): Promise<string> {
  const dir = join(ROOT, ".cache", `${name}-${version}`);
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
      if (Date.now() > deadline) throw new Error(`timed out waiting for another ${name} install (${lock})`);
      await sleep(500);
      continue;
    }
    try {
      if (existsSync(marker)) break;
      rmSync(dir, { recursive: true, force: true });
      run("python3", ["-m", "venv", dir]);
      run(join(dir, "bin", "pip"), ["install", "--quiet", "--disable-pip-version-check", pipSpec]);
      writeFileSync(marker, `${version}\n`);
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  }
  return join(dir, "bin");
}

function run(cmd: string, args: string[]): void {
  const result = spawnSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 9 * 60_000 });
  if (result.status !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} failed (${result.status ?? result.signal}): ${(result.stderr || result.error?.message || "").slice(-2000)}`);
  }
}
