// Incremental backups and garbage collection (issue #4), on the real local
// stack. Prints, in one run:
//   - full backup vs incrementals after (a) the astronomy-like change (1% rows
//     appended to observations, 1% of its rows updated among its newest 2%,
//     100 scattered updates to old rows; target: new stored bytes <= 8% of
//     the full's stored bytes) and (b) uniformly random updates to 1% of rows
//     (reported), with wall times;
//   - garbage collection time over 100 backups (a smaller database, changed a
//     little before each backup): reading every manifest and listing every
//     pack is the work that grows with the number of backups;
//   - bare pg_dump -Fc vs pg_dump -Fd -j 2 on this machine (what a parallel
//     dump could gain here);
//   - restic beside ours: `pg_dump -Fc -Z0 | restic backup --stdin` after the
//     full and after each change, and the bytes each added to its repository.
//   npm run bench:incremental -- [--size 1GB] [--gc-size 40MB] [--gc-backups 100] [--no-gc]
import { spawnSync } from "node:child_process";
import { ensureRestic, resticRepo, type ResticRepo } from "./support/restic.ts";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { appendObservations, seedAstronomyDatabase, updateObservations } from "../runner/dev/astronomy-seed.ts";
import { createDatabase, dropDatabase, ensurePostgres, pgEnv, psql } from "../runner/dev/postgres.ts";
import { generateLocalSecrets } from "../runner/dev/secrets.ts";
import { freePort, startStack, type Stack } from "../runner/dev/stack.ts";

const { values: args } = parseArgs({
  options: {
    size: { type: "string", default: "1GB" }, "gc-size": { type: "string", default: "40MB" }, "gc-backups": { type: "string", default: "100" },
    "no-gc": { type: "boolean", default: false },
  },
});

function bytes(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(MB|GB)$/i.exec(text);
  if (!m) throw new Error(`a size like 200MB or 1GB, not ${text}`);
  return Number(m[1]) * 1024 ** (m[2]!.toUpperCase() === "GB" ? 3 : 2);
}

const MiB = 1024 * 1024;
const pg = await ensurePostgres();

async function withStack<T>(databaseUrl: string, fn: (api: Api, stack: Stack) => Promise<T>): Promise<T> {
  const secrets = await generateLocalSecrets();
  const dir = mkdtempSync(join(tmpdir(), "astrid-bench-incr-"));
  const stack = await startStack({
    dir, workerPort: await freePort(), runnerPort: await freePort(),
    vars: { ...secrets, DATABASE_URL: databaseUrl, DATABASE_VERIFY_AFTER_BACKUP: "off" },
  });
  try {
    return await fn(apiFor(stack.workerUrl, secrets.ADMIN_TOKEN), stack);
  } finally {
    await stack.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

type Api = (method: string, path: string, body?: unknown) => Promise<any>;

function apiFor(base: string, token: string): Api {
  return async (method, path, body) => {
    const res = await fetch(base + path, {
      method, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return res.json();
  };
}

async function runJob(api: Api, path: string, body: unknown): Promise<{ job: any; wallMs: number }> {
  const started = Date.now();
  const { job_id } = await api("POST", path, body);
  for (;;) {
    const job = await api("GET", `/jobs/${job_id}`);
    if (job.status === "succeeded") return { job, wallMs: Date.now() - started };
    if (job.status === "failed") throw new Error(`${path}: ${job.error.code}: ${job.error.message}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const scatteredOldUpdates = (url: string) =>
  psql(url, `UPDATE observations SET magnitude = magnitude + 0.001
    WHERE id IN (SELECT min(id) + (max(id) - min(id)) * g / 200 FROM observations, generate_series(1, 100) g GROUP BY g)`);

/** The peer's backup of the same database state; returns its wall time and what it added to its repository. */
function resticBackup(restic: ResticRepo, url: string): { wall_s: number; added_mib: number; repo_mib: number } {
  const before = restic.bytes();
  const started = Date.now();
  const r = spawnSync("bash", ["-c", `set -o pipefail; pg_dump -Fc -Z0 | ${restic.backupCommand}`], {
    env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("PG"))), ...pgEnv(url), ...restic.env }, stdio: ["ignore", "ignore", "pipe"],
  });
  if (r.status !== 0) throw new Error(`pg_dump | restic backup: ${r.stderr}`);
  const after = restic.bytes();
  return { wall_s: (Date.now() - started) / 1000, added_mib: (after - before) / MiB, repo_mib: after / MiB };
}

async function incrementalFigures() {
  const name = "bench_incr_src";
  const url = await createDatabase(pg, name);
  console.log(ensureRestic(console.log));
  const restic = resticRepo();
  try {
    const size = bytes(args.size!);
    console.log(`seeding ${args.size} astronomy database…`);
    await seedAstronomyDatabase(url, { targetBytes: size });
    return await withStack(url, async (api) => {
      const full = await runJob(api, "/backup/database", { type: "full" });
      const resticFull = resticBackup(restic, url);
      await appendObservations(url, 0.01);
      await updateObservations(url, 0.01, "newest");
      await scatteredOldUpdates(url);
      const astronomy = await runJob(api, "/backup/database", { type: "incremental" });
      const resticAstronomy = resticBackup(restic, url);
      await updateObservations(url, 0.01, "random");
      const random = await runJob(api, "/backup/database", { type: "incremental" });
      const resticRandom = resticBackup(restic, url);
      const row = (r: { job: any; wallMs: number }) => ({
        logical_mib: r.job.result.logical_bytes / MiB, stored_mib: r.job.result.stored_bytes / MiB,
        new_stored_mib: r.job.result.new_stored_bytes / MiB, wall_s: r.wallMs / 1000,
        new_vs_full_stored_pct: (100 * r.job.result.new_stored_bytes) / full.job.result.stored_bytes,
      });
      return { ours: { full: row(full), astronomy: row(astronomy), random: row(random) }, restic: { full: resticFull, astronomy: resticAstronomy, random: resticRandom } };
    });
  } finally {
    restic.dispose();
    await dropDatabase(pg, name);
  }
}

async function gcFigures() {
  const name = "bench_gc_src";
  const url = await createDatabase(pg, name);
  const count = Number(args["gc-backups"]);
  try {
    await seedAstronomyDatabase(url, { targetBytes: bytes(args["gc-size"]!) });
    return await withStack(url, async (api) => {
      const started = Date.now();
      for (let i = 0; i < count; i++) {
        await appendObservations(url, 0.002);
        await runJob(api, "/backup/database", { type: "incremental" });
      }
      const backupsS = (Date.now() - started) / 1000;
      const gc = await runJob(api, "/repository/gc", { grace_minutes: 0 });
      return { backups: count, backups_s: backupsS, gc_wall_s: gc.wallMs / 1000, gc: gc.job.result };
    });
  } finally {
    await dropDatabase(pg, name);
  }
}

function parallelDumpFigures() {
  const env = { ...process.env, ...pgEnv(pg.url("bench_src_1gb")) };
  const exists = psql(pg.url("postgres"), "SELECT count(*) FROM pg_database WHERE datname = 'bench_src_1gb'");
  const time = (args: string[]) => {
    const t = Date.now();
    const r = spawnSync("pg_dump", args, { env, stdio: ["ignore", "ignore", "pipe"] });
    if (r.status !== 0) throw new Error(`pg_dump ${args.join(" ")}: ${r.stderr}`);
    return (Date.now() - t) / 1000;
  };
  return exists.then((n) => {
    if (n.trim() !== "1") return undefined;
    const dir = mkdtempSync(join(tmpdir(), "astrid-fd-"));
    try {
      const fc = time(["-Fc", "-Z0", "-f", join(dir, "a.dump")]);
      const fd1 = time(["-Fd", "-Z0", "-j", "1", "-f", join(dir, "d1")]);
      const fd2 = time(["-Fd", "-Z0", "-j", "2", "-f", join(dir, "d2")]);
      return { database: "bench_src_1gb", fc_s: fc, fd_j1_s: fd1, fd_j2_s: fd2, speedup_j2: fc / fd2 };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

const { ours: incremental, restic } = await incrementalFigures();
const gc = args["no-gc"] ? undefined : await gcFigures();
const parallel = await parallelDumpFigures();

const f = (n: number) => n.toFixed(1);
console.log(`\nincremental backups (${args.size} database)`);
console.log("backup                     logical MiB  stored MiB  new MiB  new/full stored  wall s");
for (const [label, r] of Object.entries(incremental)) {
  console.log(`${label.padEnd(26)} ${f(r.logical_mib).padStart(11)} ${f(r.stored_mib).padStart(11)} ${f(r.new_stored_mib).padStart(8)} ${(f(r.new_vs_full_stored_pct) + "%").padStart(16)} ${f(r.wall_s).padStart(7)}`);
}
console.log(`astronomy-like change: ${f(incremental.astronomy.new_vs_full_stored_pct)}% of the full's stored bytes (target <= 8%): ${incremental.astronomy.new_vs_full_stored_pct <= 8 ? "met" : "MISSED"}`);
console.log(`incremental time vs full: ${f((100 * incremental.astronomy.wall_s) / incremental.full.wall_s)}%`);
console.log("\nrestic (pg_dump -Fc -Z0 | restic backup --stdin), same database states");
console.log("backup                     added MiB  ours new MiB  ours/restic  restic wall s  ours wall s");
for (const [label, r] of Object.entries(restic)) {
  const ours = incremental[label as keyof typeof incremental];
  console.log(`${label.padEnd(26)} ${f(r.added_mib).padStart(9)} ${f(ours.new_stored_mib).padStart(13)} ${(ours.new_stored_mib / r.added_mib).toFixed(2).padStart(11)}x ${f(r.wall_s).padStart(14)} ${f(ours.wall_s).padStart(12)}`);
}
if (gc) {
  console.log(`\ngarbage collection over ${gc.backups} backups (made in ${f(gc.backups_s)} s): ${f(gc.gc_wall_s)} s, ` +
    `${gc.gc.manifests} manifests read, ${gc.gc.scanned_objects} objects scanned, ${gc.gc.deleted_objects} deleted, ${f(gc.gc.reclaimed_bytes / MiB)} MiB reclaimed`);
}
if (parallel) {
  console.log(`\nparallel dump on this machine (${parallel.database}): -Fc ${f(parallel.fc_s)} s, -Fd -j1 ${f(parallel.fd_j1_s)} s, -Fd -j2 ${f(parallel.fd_j2_s)} s (x${parallel.speedup_j2.toFixed(2)})`);
}
console.log(JSON.stringify({ incremental, restic, gc, parallel }));
await pg.stop();
