// Continuous archiving end to end on the real parts: a throwaway PostgreSQL
// with wal_level=logical, the local stack (Worker in workerd, runner), a
// change stream started by the watch cron, a write load (inserts, updates of
// the newest rows, deletes, a transaction over several tables, a TOASTed
// bytea updated without touching it, a sequence, DDL mid-stream), a re-base
// under that load (a second stream with its own slot and base takes over from
// the first), and point-in-time restores to three moments, each compared
// table by table with an exported snapshot of the source at that moment.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tableFingerprints, type Fingerprint } from "../../runner/dev/compare.ts";
import { createDatabase, psql, startThrowawayPostgres, type PgServer } from "../../runner/dev/postgres.ts";
import { CONSISTENCY_METHOD, fingerprintSql, parseFingerprints } from "../../runner/database/consistency.ts";
import { PgWire } from "../../runner/database/pg-wire.ts";
import { startTestStack, type TestStack } from "../support/fixture.ts";
import { LOGICAL_SETTINGS } from "../support/logical-pg.ts";
import { openLocalState, serveLocalBucket } from "../support/local-state.ts";
import { run, scriptFromDoc, succeeded } from "../support/doc-scripts.ts";

let pg: PgServer;
let stack: TestStack;
let sourceUrl: string;
let stopped = false;

/**
 * A moment of the source, captured under the running load: its tables in an
 * exported snapshot, and the point that snapshot ends at (see Writer.between).
 */
interface Moment {
  /** Commit time of the last transaction the snapshot sees (UTC, microseconds). */
  commitAt: string;
  /** WAL insert position when the snapshot was exported: every commit before it is in the snapshot, none after. */
  lsn: string;
  tables: Record<string, Fingerprint>;
  /** detections_id_seq's value then (sequences are not transactional: read while the writer waits). */
  sequence: number;
  /** The stream whose window held the moment when it was taken. */
  stream: string;
}
const moments: Moment[] = [];

const SCHEMA = `
  CREATE TABLE objects (id int PRIMARY KEY, name text NOT NULL, magnitude real, updated_at timestamptz NOT NULL DEFAULT now());
  CREATE TABLE detections (id bigserial PRIMARY KEY, object_id int REFERENCES objects(id), ra double precision, dec double precision,
                           flux numeric(12,4), tags text[], meta jsonb, seen_at timestamptz NOT NULL DEFAULT clock_timestamp());
  CREATE TABLE images (id int PRIMARY KEY, label text, data bytea NOT NULL);
  CREATE TABLE loose_notes (note text);   -- no primary key: covered by base backups only
  INSERT INTO objects SELECT g, 'obj-' || g, g * 0.5 FROM generate_series(1, 50) g;
  INSERT INTO detections (object_id, ra, dec, flux, tags, meta)
    SELECT 1 + g % 50, g * 0.01, -g * 0.02, g * 1.5, ARRAY['a', 'b''q'], jsonb_build_object('n', g, 's', E'line\\nbreak')
      FROM generate_series(1, 200) g;
  INSERT INTO loose_notes VALUES ('static');`;

/** ~16 KB of incompressible bytes: stored out of line (TOAST). */
const BIG_BYTEA = `(SELECT decode(string_agg(md5(random()::text || g), ''), 'hex') FROM generate_series(1, 1000) g)`;

/**
 * The write load: one connection, one transaction after another, so its
 * commits are totally ordered. The only writer to the source while moments
 * are taken (the DDL below runs, and commits, before the next moment is
 * asked for).
 */
class Writer {
  private running = false;
  private loop: Promise<void> | undefined;
  private db!: PgWire;
  private i = 0;
  /** xid of the last committed transaction. */
  private lastXid = "";
  private hook: { after: number; run: (xid: string) => Promise<void> } | undefined;
  async start(): Promise<void> {
    this.db ??= await PgWire.connect(sourceUrl);
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        await this.step();
        const hook = this.hook;
        if (hook && this.i > hook.after) {
          this.hook = undefined;
          await hook.run(this.lastXid);
        }
        await new Promise((r) => setTimeout(r, 15)); // a steady, not a flat-out, load
      }
    })();
  }
  /**
   * Runs `fn` between two commits of the writer: after a transaction that
   * began after this call (so every commit made elsewhere before it, e.g.
   * DDL, precedes it) and before the next one begins. `fn` gets the xid of
   * that last transaction.
   */
  between<T>(fn: (xid: string) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.hook = { after: this.i, run: (xid) => fn(xid).then(resolve, reject) };
    });
  }
  private async step(): Promise<void> {
    const i = ++this.i;
    const tx = async (s: string) => {
      const [[xid]] = (await this.db.query(`BEGIN; ${s}; SELECT pg_current_xact_id()::text; COMMIT;`)) as [[string]];
      this.lastXid = xid;
    };
    switch (i % 6) {
      case 0: await tx(`INSERT INTO detections (object_id, ra, dec, flux, tags, meta) SELECT 1 + (g + ${i}) % 50, random(), random(), ${i}.25, ARRAY['x${i}'], '{"i": ${i}}' FROM generate_series(1, 5) g`); break;
      case 1: await tx(`UPDATE detections SET flux = flux + 1, tags = tags || 'u'::text WHERE id IN (SELECT id FROM detections ORDER BY id DESC LIMIT 3)`); break;
      case 2: await tx(`DELETE FROM detections WHERE id IN (SELECT id FROM detections ORDER BY id LIMIT 2)`); break;
      case 3: await tx(`UPDATE objects SET magnitude = magnitude + 0.1, updated_at = clock_timestamp() WHERE id = ${1 + (i % 50)};
                        INSERT INTO detections (object_id, ra, dec) VALUES (${1 + (i % 50)}, 1, 2)`); break;
      case 4: await tx(`INSERT INTO images VALUES (${i}, 'img ${i}', ${BIG_BYTEA})`); break;
      case 5: await tx(`UPDATE images SET label = label || '+' WHERE id = (SELECT max(id) FROM images)`); break; // data unchanged: TOAST left out
    }
  }
  async close(): Promise<void> {
    this.running = false;
    await this.loop;
    await this.db?.close();
  }
}

/** Tables only: a replay sets sequences to the value at its segment's cut (never behind), compared separately. */
function tablesOnly(all: Record<string, Fingerprint>): Record<string, Fingerprint> {
  return Object.fromEntries(Object.entries(all).filter(([k]) => !k.startsWith("sequence:")));
}
const tablesOf = async (url: string) => tablesOnly(await tableFingerprints(url));

const UTC_MICROS = `'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'`;

/**
 * A moment of the source under the running load, exactly. The snapshot is
 * exported between two commits of the single writer: it sees the writer's
 * last commit (whose COMMIT had returned) and every commit made elsewhere
 * before (Writer.between), and nothing after (the writer's next transaction
 * begins only once the export has returned). So the point a restore must
 * reach is that last commit: its commit time, read from the commit
 * timestamps (track_commit_timestamp; the same value the commit record and
 * so the stream carry), and the WAL insert position at the export, which lies
 * after that commit record and before the next one. The tables are then
 * fingerprinted in that snapshot, held open, while the writer goes on.
 */
async function capture(load: Writer, stream: string): Promise<Moment> {
  const snapshot = await PgWire.connect(sourceUrl);
  try {
    const point = await load.between(async (xid) => {
      const [row] = await snapshot.query(`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;
        SELECT pg_export_snapshot(), pg_current_wal_insert_lsn()::text,
               to_char(pg_xact_commit_timestamp('${xid}'::xid) AT TIME ZONE 'UTC', ${UTC_MICROS}),
               (SELECT last_value FROM detections_id_seq)`);
      return row!;
    });
    const [id, lsn, commitAt, sequence] = point as string[];
    const tables = tablesOnly(parseFingerprints(await psql(sourceUrl,
      `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '${id}';\n${fingerprintSql(CONSISTENCY_METHOD)}\nCOMMIT;`)));
    return { commitAt: commitAt!, lsn: lsn!, tables, sequence: Number(sequence), stream };
  } finally {
    await snapshot.close();
  }
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

const timelineOf = async () => (await stack.api("GET", "/backup/database/timeline?database=astrid")).body;

/** The slot a stream's job named after its id (workers/continuous/kinds.ts). */
const slotOf = (streamId: string) => `astrid_astrid_${streamId.slice(streamId.lastIndexOf("-") + 1)}`;

beforeAll(async () => {
  // Commit timestamps: a moment's restore target is the exact commit time of the last transaction its snapshot sees.
  pg = await startThrowawayPostgres({ ...LOGICAL_SETTINGS, track_commit_timestamp: "on" });
  sourceUrl = await createDatabase(pg, "src");
  await psql(sourceUrl, SCHEMA);
  stack = await startTestStack({
    vars: {
      DATABASE_URL: sourceUrl, DATABASE_CONTINUOUS: "astrid", CONTINUOUS_SEGMENT_SECONDS: "2", CONTINUOUS_HEARTBEAT_SECONDS: "1", DATABASE_VERIFY_AFTER_BACKUP: "off",
      // Any stream older than ~2 s is due for a re-base: the test decides when, by running the watch cron (wrangler dev runs none by itself).
      CONTINUOUS_REBASE_HOURS: "0.0005",
    },
  });
});

afterAll(async () => {
  // The break-glass test stops the stack itself (its state is then read directly); only its directory is left then.
  if (stack && !stopped) await stack.dispose();
  else if (stack) rmSync(stack.dir, { recursive: true, force: true });
  await pg?.stop();
}, 60_000);

describe("continuous archiving and point-in-time restore", () => {
  it("re-bases under a write load without a gap, and restores to three moments, each equal to an exported snapshot of the source", async () => {
    await stack.triggerCron("* * * * *");
    const first = await until("the stream's base", async () => (await timelineOf()).windows?.[0]);
    expect(first.base_backup_id).toMatch(/^db-astrid-/);
    // The table without a key is not streamed, and the timeline says what would include it.
    expect(first.uncovered).toEqual([{ table: "public.loose_notes", fix: `ALTER TABLE "public"."loose_notes" REPLICA IDENTITY FULL; -- or add a primary key` }]);
    const old = first.stream_id;

    const load = new Writer();
    await load.start();
    await new Promise((r) => setTimeout(r, 2000));
    moments.push(await capture(load, old));

    // Re-base under the load: a second stream with its own slot and base; the first ends once the second has taken over.
    await stack.triggerCron("* * * * *");
    const handedOver = await until("the hand-over to a new stream", async () => {
      const t = await timelineOf();
      const streams = t.windows?.[0]?.streams ?? [];
      return streams.length === 2 && !streams[0].live && streams[1].live ? t : undefined;
    });
    const next = handedOver.windows[0].stream_id;
    expect(next).not.toBe(old);
    expect(handedOver.windows).toHaveLength(1); // the two streams overlap: one window from the first base on
    expect(handedOver.windows[0].start).toBe(first.start);
    expect(handedOver.gaps).toEqual([]);
    const slots = (await psql(sourceUrl, "SELECT slot_name FROM pg_replication_slots ORDER BY 1")).trim().split("\n");
    expect(slots).toEqual([slotOf(next)]); // the old stream's slot is gone
    const ended = (await stack.api("GET", "/jobs?kind=continuous.stream")).body.jobs.filter((j: any) => j.status === "succeeded");
    expect(ended.map((j: any) => j.result.ended)).toEqual(["rebased"]);

    await new Promise((r) => setTimeout(r, 1500));
    moments.push(await capture(load, next));
    // DDL mid-stream, beside the writer: a column added and a table created, both written to at once.
    await psql(sourceUrl, `ALTER TABLE objects ADD COLUMN color text`);
    await psql(sourceUrl, `CREATE TABLE late_table (id int PRIMARY KEY, v text)`);
    await psql(sourceUrl, `UPDATE objects SET color = 'red' WHERE id <= 10; INSERT INTO late_table VALUES (1, 'one'), (2, 'two')`);
    await new Promise((r) => setTimeout(r, 1000));
    moments.push(await capture(load, next));
    await load.close();

    const last = moments.at(-1)!;
    const covered = await until("the stream to cover the last moment", async () => {
      const t = await timelineOf();
      return t.windows?.[0] && t.windows[0].end >= last.commitAt ? t : undefined;
    });
    expect(covered.gaps).toEqual([]);
    expect(covered.windows).toHaveLength(1);
    const status = (await stack.api("GET", "/backup/database/status")).body.databases[0];
    expect(status.continuous.stream_id).toBe(next);
    expect(status.continuous.rpo_seconds).toBeGreaterThanOrEqual(0);

    // The moments differ from each other, and the last one holds the DDL's effects: the test can tell a wrong point apart.
    expect(moments[0]!.tables).not.toEqual(moments[1]!.tables);
    expect(moments[1]!.tables).not.toEqual(moments[2]!.tables);
    expect(moments[2]!.tables["public.late_table"]?.rows).toBe(2);
    // The first moment by time (from the old stream's base), the second by LSN and the third by time (from the new one's).
    const targets = [{ target_time: moments[0]!.commitAt }, { target_lsn: moments[1]!.lsn }, { target_time: moments[2]!.commitAt }];
    const jobs = [];
    for (const [n, target] of targets.entries()) {
      const { status: code, body } = await stack.api("POST", "/backups/restore-pitr", { database: "astrid", ...target, target: pg.url(`pitr_${n}`) });
      expect(code, JSON.stringify(body)).toBe(202);
      expect(body.stream_id, `moment ${n}`).toBe(moments[n]!.stream); // the newest base before the target
      jobs.push(body.job_id as string);
    }
    for (const [n, id] of jobs.entries()) {
      const moment = moments[n]!;
      const job = await stack.waitForJob(id, 240_000);
      expect(job.error).toBeUndefined();
      expect(job.status).toBe("succeeded");
      expect(job.result.achieved_time, `moment ${n}`).toBe(moment.commitAt); // exactly the snapshot's last commit
      expect(job.result.transactions).toBeGreaterThan(0);
      const target = pg.url(`pitr_${n}`);
      const restored = await tableFingerprints(target);
      expect(tablesOnly(restored), `moment ${n}`).toEqual(moment.tables);
      // The sequence: set from the value recorded when the segment was cut, never behind the restored rows.
      expect(restored["sequence:public.detections_id_seq"]!.rows).toBeGreaterThanOrEqual(moment.sequence);
    }
  }, 300_000);

  it("refuses a target before any recoverable window, naming the nearest recoverable time", async () => {
    const { status, body } = await stack.api("POST", "/backups/restore-pitr", { database: "astrid", target_time: "2001-01-01T00:00:00Z", target: pg.url("never") });
    expect(status).toBe(422);
    expect(body.error.code).toBe("pitr_target_in_gap");
    expect(body.error.message).toContain("earliest recoverable after");
  });

  it("break glass: the documented scripts turn the base and the segments into the database at a moment, with stock tools", async () => {
    const moment = moments[1]!;
    const streamId = moment.stream;
    // The stack stops first: its persisted state is then read by one Miniflare, never by two processes at once.
    await stack.stop();
    stopped = true;
    const work = mkdtempSync(join(tmpdir(), "astrid-breakglass-"));
    try {
      const script = (name: string) => {
        const file = join(work, name);
        writeFileSync(file, scriptFromDoc(name), { mode: 0o755 });
        return file;
      };
      const fetchScript = script("fetch-backup.sh");
      const restoreScript = script("manual-restore.sh");
      const segmentScript = script("segment-sql.sh");
      const identity = join(work, "identity.txt");
      writeFileSync(identity, `${stack.secrets.AGE_IDENTITY.split(",").join("\n")}\n`, { mode: 0o600 });
      // What an operator sees without the Worker: the bucket's listing of the stream's segments (in seq order, as
      // docs/format.md restores them) is exactly the recorded ones, as the repository refuses any other job's.
      const state = await openLocalState(stack.persistDir);
      let keys: string[];
      let needed: number;
      try {
        keys = await state.list(`manifests/continuous/${streamId}/`);
        const recorded = await state.catalog<{ manifest_key: string }>("SELECT manifest_key FROM continuous_segments WHERE stream_id = ? ORDER BY seq", streamId);
        expect(keys).toEqual(recorded.map((r) => r.manifest_key));
        // Those that can hold a commit at or before the moment (the later ones would print nothing).
        needed = (await state.catalog<{ n: number }>("SELECT count(*) AS n FROM continuous_segments WHERE stream_id = ? AND first_commit_at <= ?", streamId, moment.commitAt))[0]!.n;
      } finally {
        await state.dispose();
      }
      expect(needed).toBeGreaterThan(1);
      const bucket = await serveLocalBucket(stack.persistDir, join(work, "fetch.log"));
      const fetchEnv = bucket.env;
      const objects = join(work, "objects");
      const base = succeeded("fetch-backup.sh base", await run("bash", [fetchScript, streamId, objects], { env: fetchEnv })).stdout.trim();
      const target = await createDatabase(pg, "breakglass");
      succeeded("manual-restore.sh", await run("bash", [restoreScript, base, objects, identity, target], { cwd: work }));
      for (const key of keys.slice(0, needed)) {
        const manifest = succeeded(`fetch-backup.sh ${key}`, await run("bash", [fetchScript, key, objects], { env: fetchEnv })).stdout.trim();
        succeeded(`segment-sql.sh | psql (${key})`, await run("bash", ["-c", `set -o pipefail; "$0" "$1" "$2" "$3" "$4" | psql -X -q -v ON_ERROR_STOP=1 "$5"`,
          segmentScript, manifest, objects, identity, moment.commitAt, target]));
      }
      await bucket.close();
      expect(await tablesOf(target)).toEqual(moment.tables);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, 600_000);
});
