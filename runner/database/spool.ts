// The parallel restore mode: the rebuilt dump is spooled to local disk, checked
// whole against the manifest, and only then restored with `pg_restore -j N`
// (parallel restore needs a seekable archive, so it cannot read a pipe).
//
// Runner settings (environment), all needed for the mode to apply:
//   RESTORE_PARALLEL_JOBS    N > 1: pg_restore's --jobs
//   RESTORE_SPOOL_MAX_BYTES  the largest dump (manifest dump.logical_bytes) to spool
//   RESTORE_SPOOL_DIR        where (default: the OS temp directory), which must
//                            also have that much room free when the job starts
// It applies only to a target database the restore creates: pg_restore -j
// cannot run in one transaction, so a failure part-way is undone by dropping
// the new database, which is not possible for a database being replaced.
// Otherwise (and by default) the dump is streamed into one transaction.
import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { mkdtemp, rm, statfs } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AppError } from "../../workers/shared/errors.ts";

export interface SpoolSettings {
  jobs: number;
  maxBytes: number;
  dir: string;
}

/** Room left on the spool's file system beyond the dump itself, for the rest of the runner. */
const FREE_MARGIN = 256 * 1024 * 1024;

function setting(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const text = env[name];
  if (text === undefined || text === "") return undefined;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0) throw new AppError("invalid_runner_setting", `${name} must be a non-negative integer, not ${JSON.stringify(text)}`);
  return value;
}

/** The parallel mode's settings, or undefined when it is not configured. */
export function spoolSettings(env: NodeJS.ProcessEnv = process.env): SpoolSettings | undefined {
  const jobs = setting(env, "RESTORE_PARALLEL_JOBS") ?? 1;
  const maxBytes = setting(env, "RESTORE_SPOOL_MAX_BYTES") ?? 0;
  if (jobs <= 1 || maxBytes === 0) return undefined;
  return { jobs, maxBytes, dir: env.RESTORE_SPOOL_DIR || tmpdir() };
}

/** Why this restore cannot use the parallel mode, or undefined if it can. Checked before anything is fetched. */
export async function spoolRefusal(s: SpoolSettings, dumpBytes: number, targetCreated: boolean): Promise<string | undefined> {
  if (!targetCreated) return "the target database exists: replacing it needs the single transaction";
  if (dumpBytes > s.maxBytes) return `the dump (${dumpBytes} bytes) is larger than RESTORE_SPOOL_MAX_BYTES (${s.maxBytes})`;
  let free: number;
  try {
    const fs = await statfs(s.dir);
    free = fs.bavail * fs.bsize;
  } catch (e) {
    return `RESTORE_SPOOL_DIR ${s.dir} is unusable: ${(e as Error).message}`;
  }
  if (free < dumpBytes + FREE_MARGIN) return `${s.dir} has ${free} bytes free, the dump needs ${dumpBytes} and ${FREE_MARGIN} to spare`;
  return undefined;
}

/**
 * Writes the stream to a private file under dir. The stream's own end checks
 * (the dump's SHA-256) run before this returns, so a file it returns is whole.
 * The file is removed on failure; on success, by the caller's dispose().
 */
export async function spool(source: AsyncIterable<Buffer>, dir: string, done?: (piece: Buffer) => void): Promise<{ file: string; dispose: () => Promise<void> }> {
  const own = await mkdtemp(join(dir, "astrid-restore-"));
  const dispose = () => rm(own, { recursive: true, force: true });
  const file = join(own, "dump");
  const out = createWriteStream(file, { mode: 0o600 });
  try {
    const failed = once(out, "error").then(([e]) => Promise.reject(e as Error));
    failed.catch(() => {});
    for await (const data of source) {
      // done(piece), as in feed(): once written, its buffer may be reused.
      if (!out.write(data, (e) => !e && done?.(data))) await Promise.race([once(out, "drain"), failed]);
    }
    out.end();
    await Promise.race([once(out, "finish"), failed]);
    return { file, dispose };
  } catch (e) {
    out.destroy();
    await dispose();
    throw e;
  }
}
