// The console's API: GET /overview (one row per protected source, failing
// first) and GET /stats/backups (one source's history for the charts), and
// the cron arithmetic behind "next run".
import { beforeEach, describe, expect, it } from "vitest";
import { nextCronRun } from "../../workers/console/cron.ts";
import { rpoState } from "../../workers/console/overview.ts";
import { rpoSeries } from "../../workers/console/stats.ts";
import { api, isoDaysAgo, isoSecondsAgo, resetState, seedBackup, seedJob, VIEWER } from "./helpers.ts";

beforeEach(resetState);

describe("nextCronRun", () => {
  const after = new Date("2026-11-27T16:41:30Z"); // a Friday
  it.each([
    ["0 2 * * *", "2026-11-28T02:00:00.000Z"],
    ["*/10 * * * *", "2026-11-27T16:50:00.000Z"],
    ["15 * * * *", "2026-11-27T17:15:00.000Z"],
    ["0 9-17 * * 1-5", "2026-11-27T17:00:00.000Z"],
    ["0 5 * * 0", "2026-11-29T05:00:00.000Z"],
    ["0 5 * * 7", "2026-11-29T05:00:00.000Z"], // 7 is Sunday too
    ["30 1 1 1 *", "2027-01-01T01:30:00.000Z"],
    ["0 0 1 * 1", "2026-11-30T00:00:00.000Z"], // day of month OR day of week: Monday the 30th comes before the 1st
  ])("%s fires next at %s", (cron, expected) => {
    expect(nextCronRun(cron, after)?.toISOString()).toBe(expected);
  });

  it("is strictly after the given time, and skips the weekend for a weekday schedule", () => {
    expect(nextCronRun("41 16 * * *", new Date("2026-11-27T16:41:00Z"))?.toISOString()).toBe("2026-11-28T16:41:00.000Z");
    expect(nextCronRun("0 9-17 * * 1-5", new Date("2026-11-27T17:00:00Z"))?.toISOString()).toBe("2026-11-30T09:00:00.000Z");
  });

  it("answers null for a date that never comes", () => {
    expect(nextCronRun("0 0 31 2 *", after)).toBeNull();
  });
});

describe("rpoState", () => {
  it("is ok within the target, at risk up to twice it, breached beyond, unknown without a point", () => {
    expect([rpoState(15, 15), rpoState(16, 15), rpoState(30, 15), rpoState(31, 15), rpoState(null, 15)])
      .toEqual(["ok", "at_risk", "at_risk", "breached", "unknown"]);
  });
});

describe("GET /overview", () => {
  it("needs a token; a viewer's is enough, and the answer says who signed in", async () => {
    expect((await api("GET", "/overview", { token: null })).status).toBe(401);
    const res = await api("GET", "/overview", { token: VIEWER });
    expect(res.status).toBe(200);
    expect(res.body.signed_in).toEqual({ role: "viewer", actor: expect.stringMatching(/^viewer:[0-9a-f]{8}$/) });
  });

  it("lists every configured source once, failing first, with the newest point, RPO, last verify and next run", async () => {
    const fresh = await seedBackup({ created_at: isoSecondsAgo(60), verified_at: isoSecondsAgo(30), verify_depth: "quick", verify_status: "passed" });
    const { body } = await api("GET", "/overview", { token: VIEWER });
    const keys = body.sources.map((s: any) => `${s.domain} ${s.source}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect(keys).toEqual(expect.arrayContaining(["database astrid", "ml mlflow", "storage astrid-data/"]));
    const order = ["red", "amber", "green"];
    const ranks = body.sources.map((s: any) => order.indexOf(s.health));
    expect(ranks).toEqual([...ranks].sort((a: number, b: number) => a - b));

    const ml = body.sources.find((s: any) => s.domain === "ml");
    expect(ml).toMatchObject({ health: "red", reasons: ["no restore point"], newest_point: null });
    const db = body.sources.find((s: any) => s.domain === "database");
    expect(db).toMatchObject({
      health: "amber", reasons: ["never drilled"], rpo_state: "ok", rpo_target_minutes: 15,
      newest_point: { id: fresh.id, type: "full", created_at: fresh.created_at },
      last_verify: { backup_id: fresh.id, depth: "quick", status: "passed" },
      rto: { implied_minutes: null, state: "unknown", restores_measured: 0 },
      continuous: null,
    });
    expect(db.rpo_minutes).toBeGreaterThanOrEqual(1);
    expect(db.rpo_minutes).toBeLessThan(5);
    // The soonest of the daily full, business-hours incremental and weekly archive schedules.
    const soonest = ["0 2 * * *", "0 9-17 * * 1-5", "0 5 * * 0"].map((c) => nextCronRun(c, new Date(body.generated_at))!.toISOString()).sort()[0];
    expect(db.next_run.at).toBe(soonest);
    const replicated = body.sources.find((s: any) => s.source === "astrid-data/");
    expect(replicated.continuous).toMatchObject({ kind: "replica", replica: "astrid-data-replica" });
  });

  it("turns a source red when its newest verify failed or its RPO is over twice the target", async () => {
    await seedBackup({ created_at: isoSecondsAgo(4 * 3600), verified_at: isoSecondsAgo(3 * 3600), verify_depth: "full", verify_status: "passed" });
    const broken = await seedBackup({ created_at: isoSecondsAgo(600), status: "corrupt", verified_at: isoSecondsAgo(300), verify_depth: "quick", verify_status: "failed" });
    const { body } = await api("GET", "/overview", { token: VIEWER });
    const db = body.sources.find((s: any) => s.domain === "database");
    expect(db.health).toBe("red");
    expect(db.rpo_state).toBe("breached"); // the verified point is 4 h old; the corrupt one does not count
    expect(db.reasons).toEqual(expect.arrayContaining([`verify of ${broken.id} failed`, expect.stringMatching(/^RPO 240(\.\d)? min is over twice/)]));
    expect(db.last_verify).toMatchObject({ backup_id: broken.id, status: "failed" });
  });

  it("shows no next run when scheduled backups are off", async () => {
    const { body } = await api("GET", "/overview", { env: { BACKUP_ENABLED: "false" } });
    expect(body.sources.every((s: any) => s.next_run === null)).toBe(true);
    expect(body.next_drill_at).toBeNull();
  });
});

describe("GET /stats/backups", () => {
  it("refuses a bad query and an anonymous caller", async () => {
    expect((await api("GET", "/stats/backups?domain=database&source=astrid", { token: null })).status).toBe(401);
    for (const q of ["domain=nope&source=astrid", "domain=database", "domain=database&source=astrid&days=91", "domain=database&source=astrid&extra=1"]) {
      const res = await api("GET", `/stats/backups?${q}`, { token: VIEWER });
      expect(res.status, q).toBe(400);
      expect(res.body.error.code).toBe("invalid_request");
    }
  });

  it("gives the window's backups oldest first with logical, stored and new bytes, their restores, and the RPO sawtooth", async () => {
    await seedBackup({ created_at: isoDaysAgo(20) }); // outside a 14-day window
    const a = await seedBackup({ created_at: isoDaysAgo(2), finished_at: isoSecondsAgo(2 * 86400 - 60), logical_bytes: 5000, stored_bytes: 2000, new_stored_bytes: 2000, duration_ms: 60_000 });
    const b = await seedBackup({ created_at: isoDaysAgo(1), finished_at: isoSecondsAgo(86400 - 120), logical_bytes: 5100, stored_bytes: 2040, new_stored_bytes: 90, duration_ms: 120_000 });
    await seedBackup({ created_at: isoDaysAgo(1), source: "other", id: "db-other-1" });
    await seedJob({
      kind: "database.restore", params: {}, status: "succeeded", backup_id: b.id, started_at: isoSecondsAgo(3600),
      finished_at: isoSecondsAgo(3000), result: JSON.stringify({ duration_ms: 600_000 }),
    });
    const { status, body } = await api("GET", "/stats/backups?domain=database&source=astrid&days=14", { token: VIEWER });
    expect(status).toBe(200);
    expect(body.backups.map((p: any) => [p.id, p.logical_bytes, p.stored_bytes, p.new_bytes, p.duration_ms])).toEqual([
      [a.id, 5000, 2000, 2000, 60_000],
      [b.id, 5100, 2040, 90, 120_000],
    ]);
    expect(body.restores).toEqual([{ job_id: expect.any(String), backup_id: b.id, finished_at: expect.any(String), duration_ms: 600_000, bytes: null }]);
    // a finishes 1 min after it started (RPO 1 min); just before b finishes the RPO is a's age (1 day 2 min), then b's own 2 min.
    expect(body.rpo.slice(0, 3).map((p: any) => p.minutes)).toEqual([1, 1442, 2]);
    expect(body.rpo.at(-1).minutes).toBeGreaterThanOrEqual(1440);
    expect(body.replication_lag).toEqual([]);
  });
});

describe("rpoSeries", () => {
  it("has no corner before the first point, and ends at now", () => {
    const now = new Date("2026-11-27T12:00:00Z");
    const series = rpoSeries([{ created_at: "2026-11-27T10:00:00Z", finished_at: "2026-11-27T10:05:00Z" }], "2026-11-20T00:00:00Z", now);
    expect(series).toEqual([{ at: "2026-11-27T10:05:00Z", minutes: 5 }, { at: now.toISOString(), minutes: 120 }]);
  });
});
