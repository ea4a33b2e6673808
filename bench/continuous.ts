// Continuous archiving under a steady astronomy-like write load (issue #13),
// on the real local stack and a throwaway PostgreSQL with wal_level=logical.
// Prints:
//   - the RPO (age of the newest durable point, sampled every second from the
//     timeline) p50 / p99 / max; goal p99 <= 60 s;
//   - the runner's CPU seconds and peak RSS over the stream; goal RSS <= 256 MiB;
//   - bytes the stream stored, per hour, against an incremental backup taken
//     over the same changes (what the hourly incrementals would store), per hour;
//   - a point-in-time restore to a point near the end of the stream against a
//     plain restore of its base, and the replay's speed against the writes it
//     replays; goal replay >= 5x faster.
//   npm run bench:continuous -- [--size 1GB] [--rows-per-second 2000] [--minutes 30]
// A small run (the machine is shared): --size 50MB --rows-per-second 200 --minutes 2
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { seedAstronomyDatabase } from "../runner/dev/astronomy-seed.ts";
import { createDatabase, psql, startThrowawayPostgres } from "../runner/dev/postgres.ts";
import { generateLocalSecrets } from "../runner/dev/secrets.ts";
import { freePort } from "../runner/dev/stack.ts";
import { freezeCode } from "./support/frozen-code.ts";
import { PgWire } from "../runner/database/pg-wire.ts";
import { cpuDelta, cpuSnapshot, sampleRss } from "./support/proc.ts";

const { values: args } = parseArgs({
  options: { size: { type: "string", default: "1GB" }, "rows-per-second": { type: "string", default: "2000" }, minutes: { type: "string", default: "30" } },
});
const MiB = 1024 * 1024;
const mib = (bytes: number) => Math.round(bytes / MiB);
const size = (() => {
  const m = /^(\d+(?:\.\d+)?)\s*(MB|GB)$/i.exec(args.size!);
  if (!m) throw new Error(`a size like 200MB or 1GB, not ${args.size}`);
  return Number(m[1]) * 1024 ** (m[2]!.toUpperCase() === "GB" ? 3 : 2);
})();
const rowsPerSecond = Number(args["rows-per-second"]);
const seconds = Number(args.minutes) * 60;

const pg = await startThrowawayPostgres({ wal_level: "logical", max_replication_slots: "4", max_wal_senders: "4", max_slot_wal_keep_size: "4GB" });
const sourceUrl = await createDatabase(pg, "astro");
const dir = mkdtempSync(join(tmpdir(), "astrid-bench-cont-"));
const secrets = await generateLocalSecrets();
// A frozen copy of the code: a half-hour run outlives edits to the working tree (wrangler dev would reload on them).
const code = await freezeCode();
const stack = await code.startStack({
  dir, workerPort: await freePort(), runnerPort: await freePort(),
  vars: { ...secrets, DATABASE_URL: sourceUrl, DATABASE_CONTINUOUS: "astrid", DATABASE_VERIFY_AFTER_BACKUP: "off" },
});
const api = async (method: string, path: string, body?: unknown) => {
  const res = await fetch(stack.workerUrl + path, {
    method, headers: { authorization: `Bearer ${secrets.ADMIN_TOKEN}`, "content-type": "application/json" }, ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return res.json() as Promise<any>;
};
const waitJob = async (id: string) => {
  for (;;) {
    const job = await api("GET", `/jobs/${id}`);
    if (job.status === "succeeded") return job;
    if (job.status === "failed") throw new Error(`${job.kind}: ${job.error.code}: ${job.error.message}`);
    await new Promise((r) => setTimeout(r, 250));
  }
};
const timeline = () => api("GET", "/backup/database/timeline?database=astrid");
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length - 1) * p))] ?? NaN;
const serverNow = async () => (await psql(sourceUrl, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")).trim();

try {
  console.log(`seeding ${args.size} …`);
  await seedAstronomyDatabase(sourceUrl, { targetBytes: size });
  const runnerPid = stack.runnerPid()!;
  // The runner's memory by phase: VmHWM is the process's lifetime peak, so each phase is sampled on its own.
  let phaseRss = sampleRss(runnerPid, 100);
  // A full backup first: the incremental at the end measures the same changes the stream stored.
  const full = await waitJob((await api("POST", "/backup/database", { type: "full" })).job_id);
  const fullBackupRss = phaseRss.stop();
  phaseRss = sampleRss(runnerPid, 100);
  // The stream (slot + base), started as the watch cron does.
  await fetch(`${stack.workerUrl}/__scheduled?cron=${encodeURIComponent("* * * * *")}`);
  for (;;) {
    if ((await timeline()).windows?.length) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  const baseRss = phaseRss.stop();
  const base = (await timeline()).windows[0];
  const rss = sampleRss(runnerPid, 100);
  const role = (s: { pid: number; comm: string }) => (s.pid === runnerPid ? "runner" : s.comm);
  const cpuBefore = cpuSnapshot(role);

  // Load: each second, rows_per_second new observations (5 statements) and updates of 10% as many of the newest.
  const db = await PgWire.connect(sourceUrl);
  const rpo: number[] = [];
  const sampler = setInterval(async () => {
    const t = await timeline().catch(() => undefined);
    const end = t?.windows?.at(-1)?.end;
    if (end) rpo.push((Date.now() - Date.parse(end)) / 1000);
  }, 1000);
  const loadStart = await serverNow();
  const started = Date.now();
  let written = 0;
  let behind = 0;
  console.log(`load: ${rowsPerSecond} rows/s for ${seconds} s …`);
  // The streaming peak minute by minute: a peak that grows with time is a leak, not a phase.
  const rssByMinute: number[] = [];
  let minuteRss = sampleRss(runnerPid, 100);
  for (let s = 0; s < seconds; s++) {
    if (s > 0 && s % 60 === 0) {
      rssByMinute.push(mib(minuteRss.stop().peak_rss_sampled_bytes));
      minuteRss = sampleRss(runnerPid, 100);
    }
    const tick = Date.now();
    const batch = Math.ceil(rowsPerSecond / 5);
    for (let k = 0; k < 5; k++) {
      await db.query(`INSERT INTO observations (survey_id, observed_at, ra, dec, band, magnitude, magnitude_err, exposure_s, airmass, flux, metadata, notes)
        SELECT survey_id, clock_timestamp(), ra + random() * 0.01, dec, band, magnitude, magnitude_err, exposure_s, airmass, flux, metadata, notes
          FROM observations WHERE id > (SELECT max(id) FROM observations) - ${batch * 4} LIMIT ${batch}`);
      written += batch;
    }
    await db.query(`UPDATE observations SET magnitude = magnitude + 0.001 WHERE id > (SELECT max(id) FROM observations) - ${Math.ceil(rowsPerSecond / 10)}`);
    const wait = 1000 - (Date.now() - tick);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    else behind++;
  }
  rssByMinute.push(mib(minuteRss.stop().peak_rss_sampled_bytes));
  const loadEnd = await serverNow();
  const loadSeconds = (Date.now() - started) / 1000;
  await db.close();
  // Until the stream has caught up with the end of the load.
  for (;;) {
    const end = (await timeline()).windows.at(-1).end;
    if (end >= loadEnd) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  clearInterval(sampler);
  const cpu = cpuDelta(cpuBefore, cpuSnapshot(role));
  const memory = rss.stop();
  const window = (await timeline()).windows.at(-1);
  const incremental = await waitJob((await api("POST", "/backup/database", { type: "incremental" })).job_id);

  // Restores: the plain base, and the point in time a little before the load's end.
  const plain = await waitJob((await api("POST", `/backups/${base.base_backup_id}/restore`, { target: pg.url("plain_restore") })).job_id);
  const target = loadEnd;
  const pitr = await waitJob((await api("POST", "/backups/restore-pitr", { database: "astrid", target_time: target, target: pg.url("pitr_restore") })).job_id);

  const perHour = (bytes: number) => (bytes * 3600) / loadSeconds;
  console.log(JSON.stringify({
    machine_note: "shared 2-core machine, other jobs running: figures are indicative",
    size: args.size, rows_per_second_asked: rowsPerSecond, rows_written: written, load_seconds: Math.round(loadSeconds),
    seconds_behind_schedule: behind, load: { from: loadStart, to: loadEnd },
    rpo_seconds: { p50: pct(rpo, 0.5), p99: pct(rpo, 0.99), max: Math.max(...rpo), samples: rpo.length, goal_p99: 60 },
    runner: {
      cpu_seconds: cpu.runner ?? 0, cpu_children_seconds: cpu["runner children"] ?? 0,
      peak_rss_mib: {
        full_backup: mib(fullBackupRss.peak_rss_sampled_bytes), stream_base_backup: mib(baseRss.peak_rss_sampled_bytes),
        streaming: mib(memory.peak_rss_sampled_bytes), streaming_by_minute: rssByMinute.join(" "),
        process_lifetime_vm_hwm: mib(memory.vm_hwm_bytes ?? 0),
      },
      goal_rss_mib: 256,
    },
    stored: {
      stream_segments: window.segments, stream_bytes: window.stored_bytes, stream_bytes_per_hour: Math.round(perHour(window.stored_bytes)),
      incremental_new_bytes: incremental.result.new_stored_bytes, incremental_bytes_per_hour_if_hourly: Math.round(perHour(incremental.result.new_stored_bytes)),
      full_backup_stored_bytes: full.result.stored_bytes,
    },
    restore: {
      plain_base_ms: plain.result.duration_ms, pitr_ms: pitr.result.duration_ms, pitr_base_ms: pitr.result.base_ms, pitr_replay_ms: pitr.result.replay_ms,
      transactions_replayed: pitr.result.transactions, achieved_time: pitr.result.achieved_time,
      replay_speed_vs_writes: Math.round((loadSeconds * 1000) / Math.max(1, pitr.result.replay_ms) * 10) / 10, goal_replay_speed: 5,
    },
  }, null, 2));
} finally {
  await stack.stop();
  code.dispose();
  rmSync(dir, { recursive: true, force: true });
  await pg.stop();
}
