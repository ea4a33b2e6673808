// restic as the peer in the database benchmarks: the tool a user would pick
// to back a dump up (`pg_dump -Fc -Z0 | restic backup --stdin`, restic's own
// chunking, zstd and AES into a local repository) and to restore it
// (`restic dump | pg_restore`). Debian's package, installed when missing.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const RESTIC_FILE = "dump.pgc";

/** restic's version line; installs Debian's `restic` first if it is not on the PATH. */
export function ensureRestic(log: (msg: string) => void): string {
  const version = () => spawnSync("restic", ["version"], { encoding: "utf8" });
  let v = version();
  if (v.error || v.status !== 0) {
    log("restic not found: apt-get install -y restic ...");
    const apt = spawnSync("apt-get", ["install", "-y", "restic"], { encoding: "utf8", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
    if (apt.status !== 0) throw new Error(`cannot install restic: ${(apt.stderr || apt.stdout).slice(-500)}`);
    v = version();
  }
  return v.stdout.trim();
}

export interface ResticRepo {
  dir: string;
  /** Shell text: a pipeline stage that backs stdin up as RESTIC_FILE. */
  backupCommand: string;
  /** Shell text: a pipeline stage that writes the newest RESTIC_FILE to stdout. */
  dumpCommand: string;
  /** The environment restic needs (repository, password, cache inside the repository's temp dir). */
  env: Record<string, string>;
  /** Bytes the repository holds on disk (every file under it). */
  bytes(): number;
  dispose(): void;
}

/** A fresh local repository (format 2: compression on, restic 0.14's default) in a temporary directory. */
export function resticRepo(): ResticRepo {
  const base = mkdtempSync(join(tmpdir(), "astrid-bench-restic-"));
  const dir = join(base, "repo");
  // A throwaway repository for timing only: the password protects nothing.
  const env = { RESTIC_REPOSITORY: dir, RESTIC_PASSWORD: "astrid-bench", RESTIC_CACHE_DIR: join(base, "cache") };
  const init = spawnSync("restic", ["init", "--repository-version", "2"], { encoding: "utf8", env: { ...process.env, ...env } });
  if (init.status !== 0) throw new Error(`restic init: ${init.stderr}`);
  return {
    dir, env,
    backupCommand: `restic backup --quiet --stdin --stdin-filename ${RESTIC_FILE}`,
    dumpCommand: `restic dump --quiet latest ${RESTIC_FILE}`,
    bytes: () => treeBytes(dir),
    dispose: () => rmSync(base, { recursive: true, force: true }),
  };
}

function treeBytes(path: string): number {
  const s = statSync(path);
  if (!s.isDirectory()) return s.size;
  return readdirSync(path).reduce((sum, name) => sum + treeBytes(join(path, name)), 0);
}
