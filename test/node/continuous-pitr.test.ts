// Continuous archiving end to end on the real parts: a throwaway PostgreSQL
// with wal_level=logical, the local stack (Worker in workerd, runner), a
// change stream started by the watch cron, a write load (inserts, updates of
// the newest rows, deletes, a transaction over several tables, a TOASTed
// bytea updated without touching it, a sequence, DDL mid-stream), and
// point-in-time restores to three moments, each compared table by table
// with the source as it was at that moment.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tableFingerprints, type Fingerprint } from "../../runner/dev/compare.ts";
import { createDatabase, psql, type PgServer } from "../../runner/dev/postgres.ts";
import { PgWire } from "../../runner/database/pg-wire.ts";
import { startTestStack, type TestStack } from "../support/fixture.ts";
import { startLogicalPostgres } from "../support/logical-pg.ts";
import { run, scriptFromDoc, serveLocalBucket, succeeded, WRANGLER } from "../support/doc-scripts.ts";
import { ROOT } from "../../runner/dev/stack.ts";

let pg: PgServer;
let stack: TestStack;
let sourceUrl: string;
let stopped = false;
/** Moments of the source the first test captured: when, and its tables then. */
const moments: { at: string; tables: Record<string, Fingerprint>; sequences: Record<string, Fingerprint> }[] = [];

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

/** ~200 KB of incompressible bytes: stored out of line (TOAST). */
const BIG_BYTEA = `(SELECT decode(string_agg(md5(random()::text || g), ''), 'hex') FROM generate_series(1, 12000) g)`;

class Load {
  private running = false;
  private loop: Promise<void> | undefined;
  private db!: PgWire;
  private i = 0;
  async start(): Promise<void> {
    this.db ??= await PgWire.connect(sourceUrl);
    this.running = true;
    this.loop = (async () => {
      while (this.running) await this.step();
    })();
  }
  /** Stops after the transaction in hand: nothing commits until start() again. */
  async pause(): Promise<void> {
    this.running = false;
    await this.loop;
  }
  private async step(): Promise<void> {
    const i = ++this.i;
    const q = (s: string) => this.db.query(s);
    switch (i % 6) {
      case 0: await q(`INSERT INTO detections (object_id, ra, dec, flux, tags, meta) SELECT 1 + (g + ${i}) % 50, random(), random(), ${i}.25, ARRAY['x${i}'], '{"i": ${i}}' FROM generate_series(1, 5) g`); break;
      case 1: await q(`UPDATE detections SET flux = flux + 1, tags = tags || 'u'::text WHERE id IN (SELECT id FROM detections ORDER BY id DESC LIMIT 3)`); break;
      case 2: await q(`DELETE FROM detections WHERE id IN (SELECT id FROM detections ORDER BY id LIMIT 2)`); break;
      case 3: await q(`BEGIN; UPDATE objects SET magnitude = magnitude + 0.1, updated_at = clock_timestamp() WHERE id = ${1 + (i % 50)};
                       INSERT INTO detections (object_id, ra, dec) VALUES (${1 + (i % 50)}, 1, 2); COMMIT;`); break;
      case 4: await q(`INSERT INTO images VALUES (${i}, 'img ${i}', ${BIG_BYTEA})`); break;
      case 5: await q(`UPDATE images SET label = label || '+' WHERE id = (SELECT max(id) FROM images)`); break; // data unchanged: TOAST left out
    }
  }
  async close(): Promise<void> {
    await this.pause();
    await this.db?.close();
  }
}

/** The source's tables now (sequences aside: a replay sets them to the value at its segment's cut, never behind). */
async function tablesOf(url: string): Promise<Record<string, Fingerprint>> {
  const all = await tableFingerprints(url);
  return Object.fromEntries(Object.entries(all).filter(([k]) => !k.startsWith("sequence:")));
}

async function serverNow(): Promise<string> {
  return (await psql(sourceUrl, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")).trim();
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

const timelineOf = async () => (await stack.api("GET", "/backup/database/timeline?database=astrid")).body;

beforeAll(async () => {
  pg = await startLogicalPostgres();
  sourceUrl = await createDatabase(pg, "src");
  await psql(sourceUrl, SCHEMA);
  stack = await startTestStack({
    vars: { DATABASE_URL: sourceUrl, DATABASE_CONTINUOUS: "astrid", CONTINUOUS_SEGMENT_SECONDS: "2", CONTINUOUS_HEARTBEAT_SECONDS: "1", DATABASE_VERIFY_AFTER_BACKUP: "off" },
  });
});

afterAll(async () => {
  // The break-glass test stops the stack itself (wrangler's CLI then reads its local state); only its directory is left then.
  if (stack && !stopped) await stack.dispose();
  else if (stack) rmSync(stack.dir, { recursive: true, force: true });
  await pg?.stop();
}, 60_000);

describe("continuous archiving and point-in-time restore", () => {
  it("restores to three moments under a write load, each equal to the source at that moment", async () => {
    await stack.triggerCron("* * * * *");
    const base = await until("the stream's base", async () => (await timelineOf()).windows?.[0]);
    expect(base.base_backup_id).toMatch(/^db-astrid-/);
    // The table without a key is not streamed, and the timeline says what would include it.
    expect(base.uncovered).toEqual([{ table: "public.loose_notes", fix: `ALTER TABLE "public"."loose_notes" REPLICA IDENTITY FULL; -- or add a primary key` }]);

    const load = new Load();
    const capture = async () => {
      await load.pause();
      const all = await tableFingerprints(sourceUrl);
      const sequences = Object.fromEntries(Object.entries(all).filter(([k]) => k.startsWith("sequence:")));
      moments.push({ tables: await tablesOf(sourceUrl), sequences, at: await serverNow() });
      await load.start();
      await new Promise((r) => setTimeout(r, 2500));
    };
    await load.start();
    await new Promise((r) => setTimeout(r, 2500));
    await capture();
    await capture();
    // DDL mid-stream: a column added and a table created, both written to at once.
    await load.pause();
    await psql(sourceUrl, `ALTER TABLE objects ADD COLUMN color text`);
    await psql(sourceUrl, `CREATE TABLE late_table (id int PRIMARY KEY, v text)`);
    await psql(sourceUrl, `UPDATE objects SET color = 'red' WHERE id <= 10; INSERT INTO late_table VALUES (1, 'one'), (2, 'two')`);
    await load.start();
    await new Promise((r) => setTimeout(r, 2500));
    await capture();
    await load.close();
    const last = moments.at(-1)!.at;
    const covered = await until("the stream to cover the last moment", async () => {
      const t = await timelineOf();
      return t.windows?.[0] && t.windows[0].end >= last ? t : undefined;
    });
    expect(covered.gaps).toEqual([]);
    expect(covered.windows).toHaveLength(1);
    const status = (await stack.api("GET", "/backup/database/status")).body.databases[0];
    expect(status.continuous.rpo_seconds).toBeGreaterThanOrEqual(0);

    // The moments differ from each other, and the last one holds the DDL's effects: the test can tell a wrong point apart.
    expect(moments[0]!.tables).not.toEqual(moments[1]!.tables);
    expect(moments[2]!.tables["public.late_table"]?.rows).toBe(2);
    const segments = covered.windows[0].segments;
    expect(segments).toBeGreaterThan(2);
    for (const [n, moment] of moments.entries()) {
      const target = pg.url(`pitr_${n}`);
      const { status: code, body } = await stack.api("POST", "/backups/restore-pitr", { database: "astrid", target_time: moment.at, target });
      expect(code, JSON.stringify(body)).toBe(202);
      const job = await stack.waitForJob(body.job_id, 240_000);
      expect(job.error).toBeUndefined();
      expect(job.status).toBe("succeeded");
      expect(job.result.achieved_time <= moment.at).toBe(true);
      expect(job.result.transactions).toBeGreaterThan(0);
      expect(await tablesOf(target)).toEqual(moment.tables);
      // Sequences: set from the values recorded when the segment was cut, never behind the restored rows.
      const sequences = Object.entries(await tableFingerprints(target)).filter(([k]) => k.startsWith("sequence:"));
      expect(sequences.length).toBeGreaterThan(0);
      for (const [key, value] of sequences) expect(value.rows, key).toBeGreaterThanOrEqual(moment.sequences[key]?.rows ?? 0);
    }
  });

  it("refuses a target before any recoverable window, naming the nearest recoverable time", async () => {
    const { status, body } = await stack.api("POST", "/backups/restore-pitr", { database: "astrid", target_time: "2001-01-01T00:00:00Z", target: pg.url("never") });
    expect(status).toBe(422);
    expect(body.error.code).toBe("pitr_target_in_gap");
    expect(body.error.message).toContain("earliest recoverable after");
  });

  it("break glass: the documented scripts turn the base and the segments into the database at a moment, with stock tools", async () => {
    const moment = moments[1]!;
    const streamId = (await timelineOf()).windows[0].stream_id;
    // wrangler's CLI opens the same local persistence as `wrangler dev`: stop the stack so they never share it.
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
      const objects = join(work, "objects");
      const bucket = await serveLocalBucket(stack.persistDir, join(work, "fetch.log"));
      const fetchEnv = bucket.env;
      // The recorded segments up to the moment, in order (a bucket listing would do as well: see docs/format.md).
      const listed = succeeded("wrangler d1 execute", await run(process.execPath, [WRANGLER, "d1", "execute", "astrid-backup-catalog", "--local",
        "--persist-to", stack.persistDir, "--json", "--command", `SELECT manifest_key FROM continuous_segments WHERE first_commit_at <= '${moment.at}' ORDER BY stream_id, seq`],
      { cwd: ROOT, env: { WRANGLER_SEND_METRICS: "false", CI: "1" } }));
      const keys: string[] = JSON.parse(listed.stdout)[0].results.map((r: { manifest_key: string }) => r.manifest_key);
      expect(keys.length).toBeGreaterThan(1);
      const base = succeeded("fetch-backup.sh base", await run("bash", [fetchScript, streamId, objects], { env: fetchEnv })).stdout.trim();
      const target = await createDatabase(pg, "breakglass");
      succeeded("manual-restore.sh", await run("bash", [restoreScript, base, objects, identity, target], { cwd: work }));
      for (const key of keys) {
        const manifest = succeeded(`fetch-backup.sh ${key}`, await run("bash", [fetchScript, key, objects], { env: fetchEnv })).stdout.trim();
        succeeded(`segment-sql.sh | psql (${key})`, await run("bash", ["-c", `set -o pipefail; "$0" "$1" "$2" "$3" "$4" | psql -X -q -v ON_ERROR_STOP=1 "$5"`,
          segmentScript, manifest, objects, identity, moment.at, target]));
      }
      await bucket.close();
      expect(await tablesOf(target)).toEqual(moment.tables);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, 600_000);
});
