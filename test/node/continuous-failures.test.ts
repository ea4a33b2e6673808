// Continuous archiving when things break, on the real parts: the runner is
// killed mid-stream (nothing it confirmed is lost, no transaction is applied
// twice, the slot resumes, no gap), and the replication slot is dropped under
// the stream (detected, alerted, a gap on the timeline, a new slot and base).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tableFingerprints } from "../../runner/dev/compare.ts";
import { createDatabase, psql, type PgServer } from "../../runner/dev/postgres.ts";
import { PgWire } from "../../runner/database/pg-wire.ts";
import { startTestStack, type TestStack } from "../support/fixture.ts";
import { startLogicalPostgres } from "../support/logical-pg.ts";

let pg: PgServer;
let stack: TestStack;
let sourceUrl: string;

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

const timelineOf = async () => (await stack.api("GET", "/backup/database/timeline?database=astrid")).body;
const serverNow = async () => (await psql(sourceUrl, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")).trim();

/** Keeps the watch cron firing, as Cloudflare would every minute, until `done` says stop. */
async function cronUntil<T>(what: string, done: () => Promise<T | undefined>, timeoutMs = 180_000): Promise<T> {
  return until(what, async () => {
    await stack.triggerCron("* * * * *");
    return done();
  }, timeoutMs);
}

/** Writes that show a lost or doubled transaction: each adds a ledger row (unique id) and bumps a counter. */
async function writeLedger(db: PgWire, from: number, count: number): Promise<void> {
  for (let i = from; i < from + count; i++) {
    await db.query(`BEGIN; INSERT INTO ledger VALUES (${i}, 'entry ${i}'); UPDATE counter SET n = n + 1; COMMIT;`);
  }
}

async function restoreAndCompare(name: string): Promise<{ job: any; at: string }> {
  const at = await serverNow();
  const expected = await tableFingerprints(sourceUrl);
  await until("the stream to cover now", async () => {
    const t = await timelineOf();
    return t.windows?.at(-1)?.end >= at ? t : undefined;
  });
  const target = pg.url(name);
  const { status, body } = await stack.api("POST", "/backups/restore-pitr", { database: "astrid", target_time: at, target });
  expect(status, JSON.stringify(body)).toBe(202);
  const job = await stack.waitForJob(body.job_id, 240_000);
  expect(job.error).toBeUndefined();
  const tables = (fp: Record<string, unknown>) => Object.fromEntries(Object.entries(fp).filter(([k]) => !k.startsWith("sequence:")));
  expect(tables(await tableFingerprints(target))).toEqual(tables(expected));
  return { job, at };
}

beforeAll(async () => {
  pg = await startLogicalPostgres();
  sourceUrl = await createDatabase(pg, "src");
  await psql(sourceUrl, `CREATE TABLE ledger (id int PRIMARY KEY, note text); CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL);
    INSERT INTO counter VALUES (1, 0);
    -- A tripwire for the interrupted-replay test: fires also during a replay (ALWAYS), only where astrid.trip is on.
    CREATE FUNCTION trip() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
      IF current_setting('astrid.trip', true) = 'on' AND NEW.note = 'tripwire' THEN RAISE EXCEPTION 'tripwire'; END IF; RETURN NEW; END $$;
    CREATE TRIGGER tripwire BEFORE INSERT ON ledger FOR EACH ROW EXECUTE FUNCTION trip();
    ALTER TABLE ledger ENABLE ALWAYS TRIGGER tripwire;`);
  stack = await startTestStack({
    vars: {
      DATABASE_URL: sourceUrl, DATABASE_CONTINUOUS: "astrid", CONTINUOUS_SEGMENT_SECONDS: "1", CONTINUOUS_HEARTBEAT_SECONDS: "1",
      DATABASE_VERIFY_AFTER_BACKUP: "off", JOB_LEASE_SECONDS: "6",
    },
  });
  await stack.triggerCron("* * * * *");
  await until("the stream's base", async () => (await timelineOf()).windows?.[0]);
});

afterAll(async () => {
  await stack?.dispose();
  await pg?.stop();
});

describe("continuous archiving under failures", () => {
  it("runner killed mid-stream: the stream resumes from the slot, nothing confirmed is lost, nothing is applied twice", async () => {
    const db = await PgWire.connect(sourceUrl);
    await writeLedger(db, 0, 40);
    const firstJob = (await stack.api("GET", "/jobs?kind=continuous.stream")).body.jobs[0];
    // Some of it durable and confirmed, then the runner dies with more in hand.
    await until("a first segment", async () => (await timelineOf()).windows?.[0]?.segments > 0);
    await writeLedger(db, 40, 40);
    await stack.killRunner("SIGKILL");
    await writeLedger(db, 80, 40); // written while no runner holds the slot
    await stack.startRunner();
    await cronUntil("a new stream job", async () => {
      const jobs = (await stack.api("GET", "/jobs?kind=continuous.stream")).body.jobs;
      return jobs.find((j: any) => j.id !== firstJob.id && j.status === "running");
    });
    const lost = await stack.waitForJob(firstJob.id, 60_000);
    expect(lost.error?.code).toBe("runner_lost");
    await writeLedger(db, 120, 20);
    await db.close();
    expect(await psql(sourceUrl, "SELECT n FROM counter")).toBe("140\n");
    const { job } = await restoreAndCompare("after_kill");
    expect(job.result.transactions).toBeGreaterThanOrEqual(140);
    const timeline = await timelineOf();
    expect(timeline.windows).toHaveLength(1); // the same stream, resumed: no gap
    expect(timeline.gaps).toEqual([]);
  });

  it("slot dropped under the stream: detected, alerted, a gap on the timeline, and a new slot and base", async () => {
    const before = await timelineOf();
    const streamId = before.windows[0].stream_id;
    const slot = `astrid_astrid_${streamId.slice(streamId.lastIndexOf("-") + 1)}`; // the stream's own slot
    // What a Supabase upgrade or restore does to slots: gone, whoever was reading it.
    await until("the slot dropped", async () => {
      try {
        await psql(sourceUrl, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '${slot}' AND active_pid IS NOT NULL;
          SELECT pg_drop_replication_slot('${slot}');`);
        return true;
      } catch {
        return undefined;
      }
    });
    const db = await PgWire.connect(sourceUrl);
    await writeLedger(db, 1000, 10);
    const after = await cronUntil("a second window after the lost slot", async () => {
      const t = await timelineOf();
      return t.windows?.length === 2 ? t : undefined;
    });
    expect(after.windows[0].stream_id).toBe(streamId);
    expect(after.windows[1].stream_id).not.toBe(streamId);
    expect(after.gaps).toHaveLength(1);
    expect(after.gaps[0]).toMatchObject({ cause: "slot_lost", from: after.windows[0].end, until: after.windows[1].start });
    const alerts = (await stack.api("GET", "/dr/alerts")).body.alerts;
    expect(alerts.map((a: any) => a.kind)).toContain("continuous_slot_lost");
    await writeLedger(db, 1010, 10);
    await db.close();
    await restoreAndCompare("after_slot_loss");
    // A time inside the gap is refused, naming the recoverable times around it.
    const gap = after.gaps[0];
    if (gap.from < gap.until) {
      const inside = new Date((Date.parse(gap.from) + Date.parse(gap.until)) / 2).toISOString();
      if (inside > gap.from && inside < gap.until) {
        const { status, body } = await stack.api("POST", "/backups/restore-pitr", { database: "astrid", target_time: inside, target: pg.url("in_gap") });
        expect(status).toBe(422);
        expect(body.error.code).toBe("pitr_target_in_gap");
      }
    }
  });

  it("garbage collection asks the stream to give way, runs alone, and the stream resumes with nothing lost", async () => {
    const db = await PgWire.connect(sourceUrl);
    await writeLedger(db, 2000, 20);
    const streamJob = (await stack.api("GET", "/jobs?kind=continuous.stream&status=running")).body.jobs[0];
    expect(streamJob).toBeDefined();
    // No grace at all: every pack no recorded manifest names goes. The stream's packs must all be named.
    const { status, body } = await stack.api("POST", "/repository/gc", { grace_minutes: 0 });
    expect(status).toBe(202);
    const yielded = await stack.waitForJob(streamJob.id, 60_000);
    expect(yielded.status).toBe("succeeded");
    expect(yielded.result.ended).toBe("yielded");
    // While GC waits or runs, the watch cron's restart waits behind it.
    await stack.triggerCron("* * * * *");
    const gc = await stack.waitForJob(body.job_id, 180_000);
    expect(gc.status).toBe("succeeded");
    const restarted = (await stack.api("GET", "/jobs?kind=continuous.stream")).body.jobs.filter((j: any) => j.created_at > streamJob.created_at);
    for (const j of restarted) if (j.started_at) expect(j.started_at >= gc.finished_at).toBe(true);
    await writeLedger(db, 2020, 20);
    await cronUntil("the stream running again", async () =>
      (await stack.api("GET", "/jobs?kind=continuous.stream&status=running")).body.jobs[0]);
    await writeLedger(db, 2040, 20);
    await db.close();
    await restoreAndCompare("after_gc");
  });

  it("DDL that cannot be replayed safely (a query string holding DDL and DML) ends the stream: a new base, and a gap with its cause", async () => {
    const before = await timelineOf();
    const db = await PgWire.connect(sourceUrl);
    await writeLedger(db, 3000, 5);
    // One simple query, two statements: its captured text would replay the INSERT a second time.
    await db.query("ALTER TABLE ledger ADD COLUMN extra text; INSERT INTO ledger VALUES (3100, 'mixed', 'x')");
    await writeLedger(db, 3101, 5);
    const after = await cronUntil("a new window after the schema change", async () => {
      const t = await timelineOf();
      return t.windows?.length === before.windows.length + 1 ? t : undefined;
    });
    expect(after.gaps.at(-1)).toMatchObject({ cause: "schema_changed" });
    // The ended stream dropped its slot: only the new stream's is left.
    const newest = after.windows.at(-1).stream_id;
    expect((await psql(sourceUrl, "SELECT slot_name FROM pg_replication_slots")).trim()).toBe(`astrid_astrid_${newest.slice(newest.lastIndexOf("-") + 1)}`);
    await writeLedger(db, 3200, 5);
    await db.close();
    await restoreAndCompare("after_schema_change");
  });

  it("a replay interrupted part-way and run again continues where it stopped: the same result, nothing applied twice", async () => {
    const db = await PgWire.connect(sourceUrl);
    await writeLedger(db, 4000, 5);
    await db.query("BEGIN; INSERT INTO ledger (id, note) VALUES (4005, 'tripwire'); UPDATE counter SET n = n + 1; COMMIT;");
    await writeLedger(db, 4006, 5);
    await db.close();
    const at = await serverNow();
    const expected = await tableFingerprints(sourceUrl);
    await until("the stream to cover now", async () => ((await timelineOf()).windows?.at(-1)?.end >= at ? true : undefined));
    const targetUrl = await createDatabase(pg, "resumed");
    await psql(pg.url("postgres"), "ALTER DATABASE resumed SET astrid.trip = 'on'");
    const restore = async () => {
      const { status, body } = await stack.api("POST", "/backups/restore-pitr", { database: "astrid", target_time: at, target: targetUrl });
      expect(status, JSON.stringify(body)).toBe(202);
      return stack.waitForJob(body.job_id, 240_000);
    };
    const interrupted = await restore();
    expect(interrupted.status, JSON.stringify(interrupted.error)).toBe("failed");
    expect(interrupted.error.code).toBe("replay_failed");
    const applied = (await psql(targetUrl, "SELECT lsn FROM astrid_pitr.applied")).trim();
    expect(applied).not.toBe("0/0"); // part of the replay committed before the tripwire
    await psql(pg.url("postgres"), "ALTER DATABASE resumed RESET astrid.trip");
    const resumed = await restore(); // same target, no replace: it continues from astrid_pitr.applied
    expect(resumed.error).toBeUndefined();
    expect(resumed.status).toBe("succeeded");
    const tables = (fp: Record<string, unknown>) => Object.fromEntries(Object.entries(fp).filter(([k]) => !k.startsWith("sequence:")));
    expect(tables(await tableFingerprints(targetUrl))).toEqual(tables(expected));
  });

  it("a transaction of ~13 MB of SQL (over PART_BYTES) streams and replays in parts: a restore has all of it or none of it", async () => {
    const db = await PgWire.connect(sourceUrl);
    await writeLedger(db, 5000, 3);
    const before = await serverNow();
    await db.query(`BEGIN; INSERT INTO ledger SELECT g, repeat('bulk load ', 40) || g FROM generate_series(10000, 39999) g;
      UPDATE counter SET n = n + 30000; COMMIT;`);
    await writeLedger(db, 5003, 3);
    await db.close();
    const { at } = await restoreAndCompare("after_bulk");
    expect(at > before).toBe(true);
    const { status, body } = await stack.api("POST", "/backups/restore-pitr", { database: "astrid", target_time: before, target: pg.url("before_bulk") });
    expect(status, JSON.stringify(body)).toBe(202);
    expect((await stack.waitForJob(body.job_id, 240_000)).error).toBeUndefined();
    expect(await psql(pg.url("before_bulk"), "SELECT count(*) FILTER (WHERE id >= 10000), count(*) FILTER (WHERE id BETWEEN 5000 AND 5002) FROM ledger")).toBe("0|3\n");
    expect(await psql(pg.url("after_bulk"), "SELECT count(*) FROM ledger WHERE id >= 10000")).toBe("30000\n");
  });
});
