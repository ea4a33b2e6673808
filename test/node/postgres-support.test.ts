// The dev PostgreSQL helpers that the backup and restore tests stand on: if a
// seed is not deterministic or a fingerprint misses a change, those tests
// would pass or fail for the wrong reasons.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appendObservations, seedAstronomyDatabase, updateObservations } from "../../runner/dev/astronomy-seed.ts";
import { tableFingerprints } from "../../runner/dev/compare.ts";
import { compareFingerprints, fingerprintDatabase, recordedFingerprints } from "../../runner/database/consistency.ts";
import { ConsistencyRecord } from "../../workers/shared/format.ts";
import { createDatabase, dropDatabase, ensurePostgres, pgEnv, psql, type PgServer } from "../../runner/dev/postgres.ts";

const MiB = 1024 * 1024;

describe("pgEnv", () => {
  it("maps every part of the URL, percent-decoded", () => {
    expect(pgEnv("postgres://back%40up:p%3Aw%2F@[::1]:6543/astro%20db?sslmode=require&connect_timeout=7")).toEqual({
      PGHOST: "::1",
      PGPORT: "6543",
      PGUSER: "back@up",
      PGPASSWORD: "p:w/",
      PGDATABASE: "astro db",
      PGSSLMODE: "require",
      PGCONNECT_TIMEOUT: "7",
    });
  });

  it("leaves out what the URL leaves out, and reads socket directories", () => {
    expect(pgEnv("postgresql://%2Fvar%2Frun%2Fpostgresql/astrid")).toEqual({
      PGHOST: "/var/run/postgresql",
      PGDATABASE: "astrid",
    });
  });

  it("rejects parameters it would otherwise silently drop, and other schemes", () => {
    expect(() => pgEnv("postgres://h/db?sslrootcert=/ca.pem")).toThrow(/sslrootcert/);
    expect(() => pgEnv("mysql://h/db")).toThrow(/not a postgres URL/);
  });
});

describe("astronomy seed and fingerprints", () => {
  let server: PgServer;
  const databases: string[] = [];

  async function seeded(label: string, targetBytes?: number): Promise<string> {
    const name = `astrid_test_${label}_${process.pid}_${Date.now().toString(36)}`;
    databases.push(name);
    const url = await createDatabase(server, name);
    await seedAstronomyDatabase(url, { targetBytes });
    return url;
  }

  const scalar = async (url: string, sql: string) => (await psql(url, sql)).trim();

  beforeAll(async () => {
    server = await ensurePostgres();
  }, 120_000);

  afterAll(async () => {
    for (const name of databases) await dropDatabase(server, name);
    await server.stop();
  }, 120_000);

  it("fills a database to about the target size, with NULLs and TOASTed values", async () => {
    const url = await seeded("size");
    const size = Number(await scalar(url, "SELECT pg_database_size(current_database())"));
    expect(size).toBeGreaterThan(20 * MiB * 0.7);
    expect(size).toBeLessThan(20 * MiB * 1.3);
    const nulls = await scalar(
      url,
      `SELECT (SELECT count(*) FROM observations WHERE magnitude IS NULL) > 0
          AND (SELECT count(*) FROM detections WHERE source_id IS NULL) > 0
          AND (SELECT count(*) FROM image_files WHERE observation_id IS NULL) > 0`,
    );
    expect(nulls).toBe("t");
    const toasted = await scalar(url, "SELECT pg_relation_size(reltoastrelid) > 0 FROM pg_class WHERE relname = 'detections'");
    expect(toasted).toBe("t");
  }, 120_000);

  it("fingerprints tables, sequences, the view and extensions, identically for two seeds", async () => {
    const first = await seeded("same_a", 10 * MiB);
    const second = await seeded("same_b", 10 * MiB);
    const fingerprints = await tableFingerprints(first);
    expect(Object.keys(fingerprints).sort()).toEqual([
      "extension:citext",
      "extension:pg_trgm",
      "extension:plpgsql",
      "public.detections",
      "public.image_files",
      "public.observations",
      "public.sources",
      "public.surveys",
      "sequence:public.detections_id_seq",
      "sequence:public.observation_id_seq",
      "view:public.nightly_survey_stats",
    ]);
    expect(fingerprints["public.surveys"]?.rows).toBe(8);
    expect(fingerprints["sequence:public.observation_id_seq"]?.rows).toBe(fingerprints["public.observations"]?.rows);
    expect(await tableFingerprints(first)).toEqual(fingerprints);
    expect(await tableFingerprints(second)).toEqual(fingerprints);
  }, 120_000);

  it("changes only the fingerprint of the table whose row changed, and tells NULL from ''", async () => {
    const url = await seeded("change", 10 * MiB);
    const before = await tableFingerprints(url);
    const surveysAfter = async (sql: string) => {
      await psql(url, sql);
      const after = await tableFingerprints(url);
      expect({ ...after, "public.surveys": undefined }).toEqual({ ...before, "public.surveys": undefined });
      return after["public.surveys"];
    };
    // Survey 3 has no description.
    const withText = await surveysAfter("UPDATE surveys SET description = 'recalibrated' WHERE id = 3");
    const withEmpty = await surveysAfter("UPDATE surveys SET description = '' WHERE id = 3");
    const restored = await surveysAfter("UPDATE surveys SET description = NULL WHERE id = 3");
    expect(withText).not.toEqual(before["public.surveys"]);
    expect(withEmpty).not.toEqual(before["public.surveys"]);
    expect(withEmpty).not.toEqual(withText);
    expect(restored).toEqual(before["public.surveys"]);

    await psql(url, "UPDATE observations SET flux[1] = flux[1] + 0.5 WHERE id = 42");
    expect((await tableFingerprints(url))["public.observations"]?.checksum).not.toBe(before["public.observations"]?.checksum);
  }, 120_000);

  it("each consistency method gives the checksums stored records hold, and a first-form record (md5, no method) is compared the md5 way", async () => {
    const name = `astrid_test_methods_${process.pid}_${Date.now().toString(36)}`;
    databases.push(name);
    const url = await createDatabase(server, name);
    await psql(url, `CREATE TABLE pinned (id int, x float8, t text, b bytea, ts timestamptz);
      INSERT INTO pinned VALUES (1, 0.1, 'a', '\\x00ff', '2026-01-02 03:04:05+00'), (2, -0.0, NULL, NULL, NULL), (2, -0.0, NULL, NULL, NULL)`);
    // Pinned: the md5 value is what the first code (#10) computed for this table. A method whose
    // values drift would fail every drill of the backups already stored with it.
    const md5 = await fingerprintDatabase(url, "row-md5-sum");
    expect(md5["public.pinned"]).toEqual({ rows: 3, checksum: "fad8bb3935d3304f86cce8e02a22b2c1" });
    expect((await fingerprintDatabase(url, "row-hashtext-sum"))["public.pinned"]).toEqual({ rows: 3, checksum: "3931543694088043909" });

    const firstForm = ConsistencyRecord.parse({
      tables: Object.fromEntries(Object.entries(md5).map(([key, f]) => [key, { rows: f.rows, md5: f.checksum }])),
      schema_sha256: "0".repeat(64), duration_ms: 1,
    });
    const recorded = recordedFingerprints(firstForm);
    expect(recorded.method).toBe("row-md5-sum");
    expect(compareFingerprints(recorded.tables, await fingerprintDatabase(url, recorded.method))).toEqual([]);
    expect(compareFingerprints(recorded.tables, await fingerprintDatabase(url))).toEqual(["table public.pinned: same 3 rows counted but their content checksum differs"]);
  }, 60_000);

  it("appends and updates observations for incremental backups", async () => {
    const url = await seeded("incremental", 10 * MiB);
    const start = await tableFingerprints(url);
    const seededRows = start["public.observations"]?.rows ?? 0;
    const rows = seededRows + Math.round(seededRows * 0.1);

    await appendObservations(url, 0.1);
    const appended = await tableFingerprints(url);
    expect(appended["public.observations"]?.rows).toBe(rows);
    expect(appended["sequence:public.observation_id_seq"]?.rows).toBe(rows);
    expect(appended["public.detections"]).toEqual(start["public.detections"]);

    const recalibrated = (sql: string) => scalar(url, `SELECT ${sql} FROM observations WHERE metadata ? 'recalibrations'`);
    await updateObservations(url, 0.05, "newest");
    const newest = Math.round(rows * 0.05);
    expect(await recalibrated("count(*) || ',' || min(id)")).toBe(`${newest},${rows - newest + 1}`);
    const afterNewest = await tableFingerprints(url);
    expect(afterNewest["public.observations"]?.checksum).not.toBe(appended["public.observations"]?.checksum);

    await updateObservations(url, 0.05, "random");
    expect(Number(await recalibrated(`count(*) FILTER (WHERE id < ${rows / 2})`))).toBeGreaterThan(0);
    const afterRandom = await tableFingerprints(url);
    expect(afterRandom["public.observations"]?.rows).toBe(rows);
    expect(afterRandom["public.observations"]?.checksum).not.toBe(afterNewest["public.observations"]?.checksum);
  }, 120_000);
});

describe("throwaway cluster", () => {
  it("starts when forced, serves queries and stops", async () => {
    const previous = process.env.ASTRID_PG_FORCE_THROWAWAY;
    process.env.ASTRID_PG_FORCE_THROWAWAY = "1";
    let server: PgServer;
    try {
      server = await ensurePostgres();
    } finally {
      if (previous === undefined) delete process.env.ASTRID_PG_FORCE_THROWAWAY;
      else process.env.ASTRID_PG_FORCE_THROWAWAY = previous;
    }
    try {
      expect(server.host).toBe("127.0.0.1");
      const url = await createDatabase(server, "astrid_throwaway");
      expect((await psql(url, "SELECT current_database(), current_user")).trim()).toBe("astrid_throwaway|postgres");
    } finally {
      await server.stop();
    }
    await expect(psql(`${server.url("postgres")}?connect_timeout=2`, "SELECT 1")).rejects.toThrow();
  }, 120_000);
});
