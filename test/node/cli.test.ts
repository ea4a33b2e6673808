// The CLI (npx astrid-backup, runner/cli/astrid/) run as a child process
// against the real local stack (wrangler dev + runner + PostgreSQL): a
// database backup followed to its end, a restore compared table by table,
// --json read back by the test, and the documented exit codes for a failed
// job (1), bad usage (2), a refused token (3) and an unknown id (4). Also:
// the checked-in API types are what the served OpenAPI document generates,
// and every route the CLI calls is in that document.
import { spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tableFingerprints } from "../../runner/dev/compare.ts";
import { psql } from "../../runner/dev/postgres.ts";
import { API_TYPES_FILE, generateApiTypes } from "../../runner/dev/api-types.ts";
import { ROOT } from "../../runner/dev/stack.ts";
import { RESTORE_PITR_PATH } from "../../runner/cli/astrid/commands/restore.ts";
import { ProgressMeter, progressLine } from "../../runner/cli/astrid/progress.ts";
import { formatAge, formatBytes, formatDuration, formatMinutes, renderTable } from "../../runner/cli/astrid/table.ts";
import { createDatabase, dropDatabase, scratchName, startTestStack, testPg, type TestStack } from "../support/fixture.ts";

const CLI = join(ROOT, "runner/cli/astrid-backup.ts");
const pg = testPg();
const source = scratchName("cli_src");
const scratch: string[] = [];
let sourceUrl: string;
let stack: TestStack;
let home: string;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI with a clean environment: the stack's URL and admin token unless `env` says otherwise. */
function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  const base: Record<string, string | undefined> = {
    PATH: process.env.PATH, HOME: home, ASTRID_API_URL: stack.workerUrl, ASTRID_TOKEN: stack.secrets.ADMIN_TOKEN, ASTRID_POLL_MS: "200",
  };
  const merged = Object.fromEntries(Object.entries({ ...base, ...env }).filter((e): e is [string, string] => e[1] !== undefined));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: merged, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

const parse = (run: Run) => {
  try {
    return JSON.parse(run.stdout);
  } catch {
    throw new Error(`not JSON (exit ${run.code}):\n${run.stdout}\n${run.stderr}`);
  }
};

beforeAll(async () => {
  sourceUrl = await createDatabase(pg, source);
  await psql(sourceUrl, `
    CREATE TABLE stars (id int PRIMARY KEY, name text NOT NULL, magnitude real);
    INSERT INTO stars SELECT g, 'star ' || g, (g % 70) / 10.0 FROM generate_series(1, 5000) g;
    CREATE TABLE notes (id serial PRIMARY KEY, body text);
    INSERT INTO notes (body) SELECT md5(g::text) FROM generate_series(1, 2000) g;`);
  stack = await startTestStack({ vars: { DATABASE_URL: sourceUrl } });
  home = mkdtempSync(join(tmpdir(), "astrid-cli-home-"));
}, 300_000);

afterAll(async () => {
  await stack?.dispose();
  if (home) rmSync(home, { recursive: true, force: true });
  // DROP DATABASE waits until every backend of the cluster has absorbed a barrier, so one COPY stalled
  // elsewhere (another run's dump into a slow reader) holds it for minutes: wait a while, then let the
  // drops finish on their own rather than fail a run whose tests passed.
  const drops = Promise.all([source, ...scratch].map((name) => dropDatabase(pg, name).catch(() => {})));
  await Promise.race([drops, new Promise((r) => setTimeout(r, 120_000))]);
}, 300_000);

describe("astrid-backup against the local stack", () => {
  let backupId: string;

  it("backup database --wait --json: follows the job to its end and prints its final view", async () => {
    const run = await cli(["backup", "database", "--wait", "--json"]);
    expect(run.code, run.stderr).toBe(0);
    const job = parse(run);
    expect(job).toMatchObject({ kind: "database.backup", status: "succeeded" });
    expect(job.result.logical_bytes).toBeGreaterThan(100_000);
    backupId = job.backup_id;
    expect(run.stderr).toContain(`job ${job.id} (database.backup) succeeded`);

    const listed = parse(await cli(["backups", "list", "--json"]));
    expect(listed.backups.map((b: any) => b.backup_id)).toEqual([backupId]);
    expect(listed.backups[0]).toMatchObject({ source: "astrid", status: "completed", logical_bytes: job.result.logical_bytes });

    const table = await cli(["backups", "list"]);
    expect(table.code).toBe(0);
    const [header, row] = table.stdout.trim().split("\n");
    expect(header).toMatch(/^BACKUP\s+SOURCE\s+TYPE\s+CREATED\s+SIZE/);
    expect(row).toContain(backupId);
    expect(row).toContain(formatBytes(job.result.logical_bytes));

    const shown = await cli(["backups", "show", backupId]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(new RegExp(`^backup:\\s+${backupId}$`, "m"));
    const json = parse(await cli(["backups", "show", backupId, "--json"]));
    expect(shown.stdout).toMatch(new RegExp(`^chunks:\\s+${json.chunk_count}$`, "m"));
    expect(shown.stdout).toMatch(/^verified:\s+(never|passed \((quick|full)\) .* ago)$/m); // the scheduled quick verify may have run already
  }, 300_000);

  it("verify --wait and restore --wait: the restored database equals the source", async () => {
    const verified = await cli(["verify", backupId, "--depth", "full", "--wait"]);
    expect(verified.code, verified.stderr).toBe(0);
    expect(verified.stdout).toMatch(/succeeded backup /);
    expect(parse(await cli(["backups", "show", backupId, "--json"]))).toMatchObject({ verify_status: "passed", verify_depth: "full" });

    const name = scratchName("cli_dst");
    scratch.push(name);
    const target = pg.url(name);
    const run = await cli(["restore", backupId, "--target", target, "--wait", "--json"]);
    expect(run.code, run.stderr).toBe(0);
    const job = parse(run);
    expect(job).toMatchObject({ kind: "database.restore", status: "succeeded", backup_id: backupId });
    expect(run.stdout + run.stderr).not.toContain(target); // the URL is sealed by the API and never echoed
    expect(await tableFingerprints(target)).toEqual(await tableFingerprints(sourceUrl));
  }, 300_000);

  it("exit 1 for a failed job: a restore over a non-empty database without --replace", async () => {
    const target = pg.url(scratch[0]!);
    const human = await cli(["restore", backupId, "--target", target, "--wait"]);
    expect(human.code).toBe(1);
    expect(human.stderr).toContain("target_not_empty");
    expect(human.stdout).toMatch(/ failed backup .*target_not_empty/);

    const json = await cli(["restore", backupId, "--target", target, "--wait", "--json"]);
    expect(json.code).toBe(1);
    expect(parse(json)).toMatchObject({ status: "failed", error: { code: "target_not_empty" } });

    // jobs wait on the failed job says the same, and jobs list shows it with its error.
    const failedId = parse(json).id;
    expect((await cli(["jobs", "wait", failedId])).code).toBe(1);
    const jobs = await cli(["jobs", "list", "--status", "failed"]);
    expect(jobs.stdout).toMatch(new RegExp(`${failedId}\\s+database\\.restore\\s+failed.*target_not_empty`));
  }, 300_000);

  it("exit 3 for a token the API refuses, a viewer token on an admin command, or no token", async () => {
    const bad = await cli(["status"], { ASTRID_TOKEN: "not-a-token" });
    expect(bad.code).toBe(3);
    expect(bad.stderr).toMatch(/astrid-backup: \w+: /);
    const viewer = await cli(["backup", "database"], { ASTRID_TOKEN: stack.secrets.VIEWER_TOKEN });
    expect(viewer.code).toBe(3);
    expect((await cli(["status", "--json"], { ASTRID_TOKEN: stack.secrets.VIEWER_TOKEN })).code).toBe(0); // a viewer may read
    const none = await cli(["status"], { ASTRID_TOKEN: undefined });
    expect(none.code).toBe(3);
    expect(none.stderr).toContain("no token");
  }, 120_000);

  it("exit 4 for an id that does not exist; --json prints the error in the API's shape", async () => {
    const show = await cli(["backups", "show", "db-astrid-20200101T000000Z-nope", "--json"]);
    expect(show.code).toBe(4);
    expect(parse(show)).toMatchObject({ error: { code: "not_found" } });
    expect((await cli(["jobs", "show", "no-such-job"])).code).toBe(4);
    expect((await cli(["jobs", "wait", "no-such-job"])).code).toBe(4);
    expect((await cli(["verify", "no-such-backup"])).code).toBe(4);
    expect((await cli(["scenario", "run", "no_such_scenario"])).code).toBe(4);
  }, 120_000);

  it("exit 2 for bad usage: the CLI's own checks, and a request the API refuses as invalid", async () => {
    const cases = [
      [], ["frobnicate"], ["backups"], ["backups", "list", "--domain", "tape"], ["backup", "database", "--bogus"],
      ["backup", "database", "--type", "weekly"], ["restore"], ["restore", "a", "b"], ["verify", backupId, "--depth", "deep"],
      ["restore-pitr", "--database", "astrid", "--target", "x"], ["restore-pitr", "--database", "astrid", "--target", "x", "--time", "2026-11-27T10:00:00Z", "--lsn", "0/3000060"],
      ["restore-pitr", "--database", "astrid", "--target", "x", "--lsn", "nope"], ["jobs", "list", "--limit", "0"], ["gc", "--grace-minutes", "soon"],
    ];
    for (const args of cases) {
      const run = await cli(args);
      expect(run.code, `${args.join(" ")}: ${run.stderr}`).toBe(2);
    }
    // The API's own refusal of an invalid request is bad usage too.
    expect((await cli(["backup", "database", "--database", "not_configured_here"])).code).toBe(2);
    expect((await cli(["help"])).code).toBe(0);
    expect((await cli(["restore", "--help"])).stdout).toMatch(/^usage: astrid-backup restore <backup-id/);
    const group = await cli(["backups", "--help"]);
    expect(group.code).toBe(0);
    expect(group.stdout).toContain("usage: astrid-backup backups list");
    const misplaced = await cli(["restore", backupId, "--target", "astrid", "--experiment", "1"]);
    expect(misplaced.code).toBe(2);
    expect(misplaced.stderr).toContain("--experiment: not for a database backup");
  }, 180_000);

  it("reads the API URL and token from a config file only if no one else can read it", async () => {
    const dir = join(home, ".config", "astrid-backup");
    mkdirSync(dir, { recursive: true });
    const file = join(dir, "config.json");
    writeFileSync(file, JSON.stringify({ url: stack.workerUrl, token: stack.secrets.VIEWER_TOKEN }));
    chmodSync(file, 0o644);
    const env = { ASTRID_API_URL: undefined, ASTRID_TOKEN: undefined };
    const open = await cli(["status"], env);
    expect(open.code).toBe(3);
    expect(open.stderr).toContain(`chmod 600 ${file}`);
    chmodSync(file, 0o600);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const status = await cli(["status", "--json"], env);
    expect(status.code, status.stderr).toBe(0);
    expect(parse(status).sources.map((s: any) => `${s.domain}/${s.source}`)).toContain("database/astrid");
    const table = await cli(["status"], env);
    expect(table.stdout).toMatch(/^DOMAIN\s+SOURCE\s+PROTECTION\s+NEWEST/);
    expect(table.stdout).toMatch(/^database\s+astrid\s+restore points\s+\d+[smhd]/m);
    rmSync(file);
  }, 120_000);

  it("restore-pitr sends its contract; the API's refusal (no continuous archive here) comes back with its code and exit 2", async () => {
    const run = await cli(["restore-pitr", "--database", "astrid", "--time", "2026-11-27T10:00:00Z", "--target", "astrid_pitr"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("pitr_no_timeline");
    const unknown = await cli(["restore-pitr", "--database", "nope", "--time", "2026-11-27T10:00:00Z", "--target", "astrid_pitr"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("not configured");
  }, 60_000);
});

describe("the CLI is typed from the API's OpenAPI document", () => {
  it("the checked-in api-types.ts is what the served document generates (npm run api:types)", async () => {
    const doc = (await stack.api("GET", "/openapi.json")).body;
    expect(await generateApiTypes(doc), "stale: run npm run api:types").toBe(readFileSync(API_TYPES_FILE, "utf8"));
  }, 60_000);

  it("every method and path the CLI calls is an operation of the document", async () => {
    const doc = (await stack.api("GET", "/openapi.json")).body;
    const dir = join(ROOT, "runner/cli/astrid");
    const sources = readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts") && f !== "api-types.ts");
    const calls = new Set<string>();
    for (const f of sources) {
      for (const m of readFileSync(join(dir, f), "utf8").matchAll(/\.call\(\s*"(get|post|put|delete)",\s*"([^"]+)"/g)) calls.add(`${m[1]} ${m[2]}`);
    }
    expect(calls.size).toBeGreaterThanOrEqual(18);
    expect([...calls].filter((c) => { const [method, path] = c.split(" "); return !doc.paths[path!]?.[method!]; })).toEqual([]);
    // The point-in-time restore is called by its path constant: its body must take the contract's fields.
    const pitr = doc.paths[RESTORE_PITR_PATH]?.post;
    expect(pitr).toBeDefined();
    const props = Object.keys(pitr.requestBody.content["application/json"].schema.properties ?? {});
    expect(props).toEqual(expect.arrayContaining(["database", "target_time", "target_lsn", "target", "replace"]));
  }, 60_000);
});

describe("what a terminal shows", () => {
  it("a progress bar with rate and ETA from the samples' own times", () => {
    const meter = new ProgressMeter({ bytes: 100 * 1024 * 1024 });
    meter.add({ phase: "restoring", bytes: 10 * 1024 * 1024, chunks: 0 }, 1_000);
    meter.add({ phase: "restoring", bytes: 30 * 1024 * 1024, chunks: 0 }, 3_000); // 10 MiB/s
    expect(progressLine("restoring", meter.state(), 10)).toBe("[###.......]  30%  30.0 MiB / 100 MiB  10.0 MiB/s  ETA 0:07  restoring");
    const guess = new ProgressMeter({ bytes: 1000, estimate: true });
    guess.add({ phase: "dumping", bytes: 100, chunks: 1 }, 0);
    expect(progressLine("dumping", guess.state(), 4)).toBe("[....]  10%  100 B / ~1000 B  -  ETA -  dumping");
    const chunks = new ProgressMeter({ chunks: 40 });
    chunks.add({ phase: "checking chunks", bytes: 0, chunks: 10 }, 0);
    chunks.add({ phase: "checking chunks", bytes: 0, chunks: 20 }, 1_000);
    expect(progressLine("checking chunks", chunks.state(), 4)).toBe("[##..]  50%  20 chunks / 40 chunks  10 chunks/s  ETA 0:02  checking chunks");
  });

  it("durations, ages and minutes read as people say them", () => {
    expect([850, 4_200, 190_000, 900_000, 7_500_000, 349_200_000].map(formatDuration)).toEqual(["850ms", "4.2s", "3m 10s", "15m", "2h 5m", "4d 1h"]);
    expect(formatAge("2026-11-27T10:00:00Z", Date.parse("2026-11-27T12:05:30Z"))).toBe("2h 5m ago");
    expect([0, 0.3, 15, 60].map(formatMinutes)).toEqual(["0s", "18s", "15m", "1h"]);
  });

  it("tables aligned by column, numbers to the right, control characters defused", () => {
    const rows = [{ id: "a", size: 5 }, { id: "longer\u001b[2J", size: 12345 }];
    expect(renderTable([{ header: "ID", value: (r) => r.id }, { header: "SIZE", value: (r) => String(r.size), align: "right" }], rows))
      .toBe("ID           SIZE\na               5\nlonger?[2J  12345");
  });
});
