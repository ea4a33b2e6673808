// DR drill benchmark: a drill over a database of --size plus a storage
// snapshot and (unless --no-ml) an ML backup, on the real local stack. Prints
// each domain's restore time and the RTO it implies at that size against the
// RTO target (goal: the database's under 10% of 60 minutes at 1 GB), the data
// loss measured with a canary against the RPO target, and what the
// consistency record costs a backup (next to a bare pg_dump of the same
// database in the same run).
//
//   npm run bench:drill -- [--size 1GB] [--objects 200] [--no-ml]
//
// The source database (bench_drill_<size>) is kept and reused; its COMMENT
// records the seeded size. Everything else is removed at the end.
// The last line of stdout is the whole result as one JSON object.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fingerprintDatabase, schemaHash } from "../runner/database/consistency.ts";
import { writeCanary } from "../runner/dr/canary.ts";
import { seedAstronomyDatabase } from "../runner/dev/astronomy-seed.ts";
import { startMlflow, type MlflowServer } from "../runner/dev/mlflow.ts";
import { Mlflow, seedMlflow } from "../runner/dev/mlflow-seed.ts";
import { createDatabase, ensurePostgres, pgEnv, psql } from "../runner/dev/postgres.ts";
import { pseudoRandom } from "../runner/dev/pseudo-random.ts";
import { generateLocalSecrets } from "../runner/dev/secrets.ts";
import { freePort, startStack, type Stack } from "../runner/dev/stack.ts";

const { values: args } = parseArgs({
  options: {
    size: { type: "string", default: "1GB" },
    objects: { type: "string", default: "200" },
    "no-ml": { type: "boolean", default: false },
  },
});
const RTO_TARGET_MIN = 60;
const RPO_TARGET_MIN = 15;
const MARKER = "astrid-bench-drill v1";

const m = /^(\d+(?:\.\d+)?)\s*(k|m|g)i?b?$/i.exec(args.size!);
if (!m) throw new Error(`not a size: ${args.size}`);
const bytes = Math.round(Number(m[1]) * 1024 ** ("kmg".indexOf(m[2]!.toLowerCase()) + 1));
const label = `${m[1]!.replace(".", "_")}${m[2]!.toLowerCase()}b`;
const log = (msg: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);

const cleanups: (() => Promise<unknown> | unknown)[] = [];
async function cleanup() {
  for (const fn of cleanups.reverse()) await Promise.resolve().then(fn).catch((e) => console.error(`cleanup: ${(e as Error).message}`));
}
process.once("SIGINT", () => void cleanup().finally(() => process.exit(130)));

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t = performance.now();
  const v = await fn();
  return [v, performance.now() - t];
}

async function bareDump(url: string): Promise<number> {
  const [, ms] = await timed(() => new Promise<void>((resolve, reject) => {
    const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("PG"))), ...pgEnv(url) };
    const child = spawn("pg_dump", ["--format=custom", "--compress=0", "--no-password"], { env, stdio: ["ignore", "ignore", "ignore"] });
    child.once("error", reject);
    child.once("close", (code) => (code === 0 ? resolve() : reject(new Error(`pg_dump exited ${code}`))));
  }));
  return ms;
}

async function main() {
  const pg = await ensurePostgres();
  const name = `bench_drill_${label}`;
  let url = pg.url(name);
  const seeded = await psql(pg.url("postgres"), `SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '${name}'`).catch(() => "");
  if (seeded.trim() !== `${MARKER} ${bytes}`) {
    // bench/database.ts's source of the same size, if there is one, is copied (fast) rather than seeded again;
    // a copy, because the canary writes into it.
    const copied = await psql(pg.url("postgres"), `DROP DATABASE IF EXISTS "${name}"; CREATE DATABASE "${name}" TEMPLATE "bench_src_${label}"`).then(() => true, () => false);
    if (!copied) {
      log(`seeding ${name} (${args.size}) ...`);
      url = await createDatabase(pg, name);
      await seedAstronomyDatabase(url, { targetBytes: bytes });
    }
    await psql(pg.url("postgres"), `COMMENT ON DATABASE "${name}" IS '${MARKER} ${bytes}'`);
  }
  const dbBytes = Number(await psql(url, "SELECT pg_database_size(current_database())"));

  let source: MlflowServer | undefined;
  let scratch: MlflowServer | undefined;
  if (!args["no-ml"]) {
    log("starting two MLflow servers ...");
    [source, scratch] = await Promise.all([startMlflow(), startMlflow()]);
    cleanups.push(() => source!.stop(), () => scratch!.stop());
    await seedMlflow(new Mlflow(source.url));
  }
  const dir = mkdtempSync(join(tmpdir(), "astrid-bench-drill-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const secrets = await generateLocalSecrets();
  // Mutable: the runner is restarted with the consistency record off for the comparison backup.
  const runnerEnv: Record<string, string> = {};
  const stack: Stack = await startStack({
    dir, workerPort: await freePort(), runnerPort: await freePort(), runnerEnv,
    vars: {
      ...secrets, DATABASE_URL: url, DR_STORAGE_SAMPLE: "100", DATABASE_VERIFY_AFTER_BACKUP: "quick",
      ...(source && scratch ? { MLFLOW_TRACKING_URI: source.url, DR_MLFLOW_TRACKING_URI: scratch.url } : { DR_DOMAINS: "database,storage,catalog" }),
    },
  });
  cleanups.push(() => stack.stop());
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(stack.workerUrl + path, {
      method, headers: { authorization: `Bearer ${secrets.ADMIN_TOKEN}`, "content-type": "application/json" }, ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return res.json() as Promise<any>;
  };
  const wait = async (jobId: string) => {
    for (;;) {
      const j = await api("GET", `/jobs/${jobId}`);
      if (j.status === "succeeded" || j.status === "failed") return j;
      await new Promise((r) => setTimeout(r, 250));
    }
  };

  log(`writing ${args.objects} objects of 256 KiB and taking a storage snapshot ...`);
  for (let i = 0; i < Number(args.objects); i++) {
    const res = await fetch(`${stack.workerUrl}/storage/objects/astrid-data/bench/o${i}.bin`, {
      method: "PUT", body: pseudoRandom(256 * 1024, i + 1), headers: { authorization: `Bearer ${secrets.ADMIN_TOKEN}` },
    });
    if (res.status !== 201) throw new Error(`PUT object: ${res.status}`);
  }
  const snap = await wait((await api("POST", "/backup/storage", { bucket: "astrid-data" })).jobs[0].job_id);
  if (snap.status !== "succeeded") throw new Error(`snapshot: ${JSON.stringify(snap.error)}`);

  // What the consistency record costs: the same work on its own, next to a bare pg_dump.
  log("bare pg_dump, and the consistency record on its own ...");
  const bareMs = await bareDump(url);
  const [, recordMs] = await timed(() => Promise.all([fingerprintDatabase(url), schemaHash(url)]));

  // Archives write every chunk afresh, so the two backups do the same work but for the record.
  const backupOnce = async () => {
    const started = await api("POST", "/backup/database", { type: "archive" });
    const backup = await wait(started.job_id);
    if (backup.status !== "succeeded") throw new Error(`backup: ${JSON.stringify(backup.error)}`);
    return { started, backup };
  };
  log("backup without the consistency record ...");
  runnerEnv.CONSISTENCY_RECORD = "off";
  await stack.killRunner("SIGTERM");
  await stack.startRunner();
  const plain = await backupOnce();
  delete runnerEnv.CONSISTENCY_RECORD;
  await stack.killRunner("SIGTERM");
  await stack.startRunner();
  const canaryInBackup = await writeCanary(url);
  log("backup with the consistency record ...");
  const { started, backup } = await backupOnce();
  for (;;) {
    const b = await api("GET", `/backups/${started.backup_id}`);
    if (b.verify_status) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  if (source) {
    log("ML backup ...");
    const ml = await wait((await api("POST", "/backup/ml", {})).job_id);
    if (ml.status !== "succeeded") throw new Error(`ml backup: ${JSON.stringify(ml.error)}`);
  }
  await writeCanary(url); // written after the backup: a real recovery would lose it

  log("drill ...");
  const drillJob = await api("POST", "/backup/test-recovery", {});
  const [drill, drillMs] = await timed(() => wait(drillJob.job_id));
  const run = await api("GET", `/dr/runs/${drillJob.job_id}`);
  const rto = await api("GET", "/dr/rto");

  const domains = (run.results ?? []).map((d: any) => {
    const minutes = (d.restore_ms + d.validate_ms) / 60_000;
    return {
      domain: d.domain, source: d.source, passed: d.passed, bytes: d.bytes, restore_s: d.restore_ms / 1000, validate_s: d.validate_ms / 1000,
      rto_minutes: Number(minutes.toFixed(2)), pct_of_rto_target: Number(((100 * minutes) / RTO_TARGET_MIN).toFixed(2)),
      data_loss_s: d.details?.data_loss_seconds ?? null, data_loss_by: d.details?.data_loss_measured_by ?? null,
    };
  });
  const db = domains.find((d: any) => d.domain === "database");
  console.log(`\ndrill over ${args.size} (pg_database_size ${(dbBytes / 1024 ** 3).toFixed(2)} GiB), ${args.objects} objects, ${source ? "ML backup" : "no ML"}: ${run.status} in ${(drillMs / 1000).toFixed(1)} s`);
  console.log("domain    source                 restore s  validate s  RTO min  % of 60-min target  data loss s");
  for (const d of domains) {
    console.log(`${d.domain.padEnd(9)} ${String(d.source).padEnd(22)} ${d.restore_s.toFixed(1).padStart(9)}  ${d.validate_s.toFixed(1).padStart(10)}  ${d.rto_minutes.toFixed(2).padStart(7)}  ${d.pct_of_rto_target.toFixed(2).padStart(18)}  ${String(d.data_loss_s ?? "-").padStart(11)} ${d.data_loss_by ?? ""}`);
  }
  console.log(`database RTO ${db ? `${db.pct_of_rto_target}% of target (goal < 10% at 1 GB): ${db.pct_of_rto_target < 10 ? "met" : "NOT met"}` : "not measured"}`);
  console.log(`data loss measured by canary: ${db?.data_loss_s ?? "-"} s vs RPO ${RPO_TARGET_MIN * 60} s (canary in the backup written ${canaryInBackup})`);
  const recordPct = (100 * recordMs) / bareMs;
  const withS = backup.result.duration_ms / 1000;
  const withoutS = plain.backup.result.duration_ms / 1000;
  console.log(`consistency record: ${(recordMs / 1000).toFixed(1)} s on its own vs bare pg_dump ${(bareMs / 1000).toFixed(1)} s (${recordPct.toFixed(0)}% extra database reads, run concurrently with the dump)`);
  console.log(`backup (archive) with the record ${withS.toFixed(1)} s vs without ${withoutS.toFixed(1)} s: x${(withS / withoutS).toFixed(2)}`);
  console.log(JSON.stringify({
    size: args.size, db_bytes: dbBytes, drill_status: run.status, drill_job: drill.status, drill_s: drillMs / 1000, domains, rto: rto.sources,
    bare_pg_dump_s: bareMs / 1000, consistency_record_s: recordMs / 1000, backup_with_record_s: withS, backup_without_record_s: withoutS, load: (await import("node:os")).loadavg(),
  }));
}

main().then(cleanup, async (e) => {
  console.error(e);
  await cleanup();
  process.exit(1);
});
