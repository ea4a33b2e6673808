// Retention (workers/database/retention.ts): the pure planRetention with
// restic-like scenarios and a reference implementation, and the policy through
// POST /backup/database/cleanup (dry run vs real run, config and request
// overrides, validation, roles).
import { env } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import type { BackupRow } from "../../workers/catalog/schema.ts";
import { isoWeek, planRetention, type RetentionCandidate, type RetentionPolicy } from "../../workers/database/retention.ts";
import { allBackupRows, api, auditRows, isoDaysAgo, resetState, seedBackup, seedJob, VIEWER } from "./helpers.ts";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

// ---- planRetention, pure ----

const OFF: RetentionPolicy = {
  retention_days: 30, archive_retention_days: 365,
  keep_last: 0, keep_hourly: 0, keep_daily: 0, keep_weekly: 0, keep_monthly: 0,
};
const policy = (p: Partial<RetentionPolicy> = {}): RetentionPolicy => ({ ...OFF, ...p });

let n = 0;
function backup(at: string | number, p: Partial<RetentionCandidate> = {}): RetentionCandidate {
  const created_at = typeof at === "number" ? new Date(at).toISOString() : at;
  return { id: `b${String(++n).padStart(6, "0")}`, source: "astrid", type: "full", status: "completed", created_at, verify_status: null, ...p };
}

const NOW = new Date("2025-04-01T00:00:00.000Z");
const daysBefore = (days: number, p: Partial<RetentionCandidate> = {}) => backup(NOW.getTime() - days * DAY, p);

function plan(backups: RetentionCandidate[], p: Partial<RetentionPolicy> = {}, now = NOW, pinned?: Map<string, string>) {
  const result = planRetention(backups, policy(p), now, pinned);
  const reasons = new Map(result.keep.map((k) => [k.backup_id, k.reasons]));
  return {
    ...result,
    kept: new Set(result.keep.map((k) => k.backup_id)),
    removed: new Set(result.remove.map((r) => r.backup_id)),
    reasons: (b: RetentionCandidate) => reasons.get(b.id),
    keptCreated: () => result.keep.map((k) => backups.find((b) => b.id === k.backup_id)!.created_at),
  };
}

/** Hourly backups on the hour from `from` (inclusive) to `to` (exclusive). */
function hourly(from: string, to: string, p: Partial<RetentionCandidate> = {}): RetentionCandidate[] {
  const out: RetentionCandidate[] = [];
  for (let t = Date.parse(from); t < Date.parse(to); t += HOUR) out.push(backup(t, p));
  return out;
}

describe("planRetention: age", () => {
  it("with every keep_* rule off is the seed's cleanup: younger than retention_days stays", () => {
    const old = [daysBefore(45), daysBefore(31)];
    const young = [daysBefore(29), daysBefore(1)];
    const r = plan([...old, ...young]);
    expect(r.kept).toEqual(new Set(young.map((b) => b.id)));
    expect(r.removed).toEqual(new Set(old.map((b) => b.id)));
    expect(r.reasons(young[0]!)).toEqual(["retention_days"]);
    expect(r.reasons(young[1]!)).toEqual(["retention_days", "newest_completed"]);
    expect(r.remove.find((x) => x.backup_id === old[0]!.id)!.reason).toBe("older than 30 days");
  });

  it("keeps a backup exactly retention_days old and removes one a millisecond older", () => {
    const exactly = backup(NOW.getTime() - 30 * DAY);
    const older = backup(NOW.getTime() - 30 * DAY - 1);
    const fresh = daysBefore(0);
    const r = plan([exactly, older, fresh]);
    expect(r.reasons(exactly)).toEqual(["retention_days"]);
    expect(r.removed).toEqual(new Set([older.id]));
  });

  it("keeps an archive exactly archive_retention_days old and removes one a millisecond older", () => {
    const fresh = daysBefore(0);
    const exactly = backup(NOW.getTime() - 365 * DAY, { type: "archive" });
    const older = backup(NOW.getTime() - 365 * DAY - 1, { type: "archive" });
    const r = plan([fresh, exactly, older]);
    expect(r.reasons(exactly)).toEqual(["archive_retention_days"]);
    expect(r.remove).toEqual([{ backup_id: older.id, reason: "archive older than 365 days" }]);
  });

  it("ages archives by archive_retention_days only, in both directions", () => {
    const fresh = daysBefore(0);
    const archive100 = daysBefore(100, { type: "archive" });
    const archive5 = daysBefore(5, { type: "archive" });
    const full100 = daysBefore(100);
    // Long archive retention keeps a 100-day archive although retention_days is 30...
    let r = plan([fresh, archive100, archive5, full100]);
    expect(r.kept).toEqual(new Set([fresh.id, archive100.id, archive5.id]));
    // ...and a short one removes a 5-day archive although retention_days would keep it.
    r = plan([fresh, archive100, archive5, full100], { archive_retention_days: 3 });
    expect(r.kept).toEqual(new Set([fresh.id]));
    expect(r.removed).toEqual(new Set([archive100.id, archive5.id, full100.id]));
  });

  it("lets no keep_* rule keep an archive, nor count one", () => {
    const fullOld = daysBefore(200);
    const archiveOld = daysBefore(400, { type: "archive" });
    const archiveNewest = daysBefore(0.5, { type: "archive" });
    const r = plan([fullOld, archiveOld, archiveNewest], {
      retention_days: 1, keep_last: 1, keep_daily: 5, keep_weekly: 5, keep_monthly: 24,
    });
    expect(r.removed).toEqual(new Set([archiveOld.id]));
    // keep_last 1 went to the full backup, not to the newer archive.
    expect(r.reasons(fullOld)).toEqual(expect.arrayContaining(["keep_last", "keep_monthly 2024-09"]));
    expect(r.reasons(archiveNewest)).toEqual(["archive_retention_days", "newest_completed"]);
  });
});

describe("planRetention: keep_* rules (restic forget)", () => {
  it("keep_last keeps the N newest", () => {
    const bs = [1, 2, 3, 4, 5].map((h) => backup(NOW.getTime() - 40 * DAY - h * HOUR));
    const r = plan(bs, { keep_last: 3 });
    expect(r.kept).toEqual(new Set(bs.slice(0, 3).map((b) => b.id)));
    expect(r.reasons(bs[1]!)).toEqual(["keep_last"]);
    expect(r.remove.map((x) => x.reason)).toEqual(["older than 30 days and kept by no keep_* rule", "older than 30 days and kept by no keep_* rule"]);
  });

  it("keep_last larger than the number of backups keeps them all", () => {
    const bs = [50, 60, 70].map((d) => daysBefore(d));
    expect(plan(bs, { keep_last: 10 }).remove).toEqual([]);
  });

  it("keep_daily keeps the newest of each of the last N days that have backups, skipping empty days", () => {
    const bs = [
      backup("2025-01-10T23:00:00.000Z"), backup("2025-01-10T08:00:00.000Z"),
      // no backups on 01-09 and 01-08
      backup("2025-01-07T12:00:00.000Z"), backup("2025-01-07T00:00:00.000Z"),
      backup("2025-01-06T23:59:59.999Z"),
      backup("2025-01-05T00:00:00.000Z"),
    ];
    const r = plan(bs, { retention_days: 0, keep_daily: 3 }, new Date("2025-03-01T00:00:00Z"));
    expect(r.keptCreated()).toEqual(["2025-01-10T23:00:00.000Z", "2025-01-07T12:00:00.000Z", "2025-01-06T23:59:59.999Z"]);
    expect(r.reasons(bs[2]!)).toEqual(["keep_daily 2025-01-07"]);
  });

  it("keep_hourly keeps the newest backup of each hour", () => {
    const bs = ["10:59:59", "10:00:00", "09:30:00", "09:00:00", "07:15:00"].map((t) => backup(`2025-01-10T${t}.000Z`));
    const r = plan(bs, { retention_days: 0, keep_hourly: 2 });
    expect(r.keptCreated()).toEqual(["2025-01-10T10:59:59.000Z", "2025-01-10T09:30:00.000Z"]);
    expect(r.reasons(bs[0]!)).toEqual(["keep_hourly 2025-01-10T10", "newest_completed"]);
  });

  it("keep_weekly uses ISO weeks in UTC: a Sunday night and the Monday after are different weeks", () => {
    const monday = backup("2025-03-10T00:00:00.000Z");
    const sundayLate = backup("2025-03-09T23:59:59.999Z");
    const wednesday = backup("2025-03-05T12:00:00.000Z");
    const mondayBefore = backup("2025-03-03T00:00:00.000Z");
    const r = plan([monday, sundayLate, wednesday, mondayBefore], { retention_days: 0, keep_weekly: 2 });
    expect(r.kept).toEqual(new Set([monday.id, sundayLate.id]));
    expect(r.reasons(monday)).toEqual(["keep_weekly 2025-W11", "newest_completed"]);
    expect(r.reasons(sundayLate)).toEqual(["keep_weekly 2025-W10"]);
  });

  it("keep_weekly puts the turn of the year in the ISO week's year", () => {
    // 2024-12-30 (Mon) .. 2025-01-05 (Sun) is 2025-W01; 2024-12-29 (Sun) is 2024-W52.
    const jan5 = backup("2025-01-05T10:00:00.000Z");
    const dec30 = backup("2024-12-30T10:00:00.000Z");
    const dec29 = backup("2024-12-29T10:00:00.000Z");
    const r = plan([jan5, dec30, dec29], { retention_days: 0, keep_weekly: 2 });
    expect(r.reasons(jan5)).toEqual(["keep_weekly 2025-W01", "newest_completed"]);
    expect(r.removed).toEqual(new Set([dec30.id]));
    expect(r.reasons(dec29)).toEqual(["keep_weekly 2024-W52"]);
  });

  it("keep_monthly keeps the newest backup of each month in UTC", () => {
    const bs = [
      backup("2025-03-01T00:00:00.000Z"), backup("2025-02-28T23:59:59.000Z"), backup("2025-02-01T00:00:00.000Z"),
      backup("2024-12-31T23:00:00.000Z"), backup("2024-12-01T00:00:00.000Z"), backup("2024-11-30T00:00:00.000Z"),
    ];
    const r = plan(bs, { retention_days: 0, keep_monthly: 3 });
    expect(r.keptCreated()).toEqual(["2025-03-01T00:00:00.000Z", "2025-02-28T23:59:59.000Z", "2024-12-31T23:00:00.000Z"]);
  });

  it("a backup kept by several rules carries every reason", () => {
    const only = daysBefore(3);
    const r = plan([only], { keep_last: 1, keep_hourly: 1, keep_daily: 1, keep_weekly: 1, keep_monthly: 1 });
    expect(r.reasons(only)).toEqual([
      "retention_days", "keep_last", "keep_hourly 2025-03-29T00", "keep_daily 2025-03-29", "keep_weekly 2025-W13",
      "keep_monthly 2025-03", "newest_completed",
    ]);
  });

  it("treats full and incremental backups as one series of restore points", () => {
    const inc = backup("2025-01-10T15:00:00.000Z", { type: "incremental" });
    const full = backup("2025-01-10T02:00:00.000Z", { type: "full" });
    const prevFull = backup("2025-01-09T02:00:00.000Z", { type: "full" });
    const r = plan([inc, full, prevFull], { retention_days: 0, keep_daily: 2 });
    expect(r.kept).toEqual(new Set([inc.id, prevFull.id]));
    expect(r.removed).toEqual(new Set([full.id]));
  });

  it("applies the rules to each database separately", () => {
    const a1 = backup("2025-01-10T10:00:00.000Z", { source: "astrid" });
    const a2 = backup("2025-01-09T10:00:00.000Z", { source: "astrid" });
    const s1 = backup("2025-01-08T10:00:00.000Z", { source: "sky" });
    const s2 = backup("2025-01-07T10:00:00.000Z", { source: "sky" });
    const r = plan([a1, a2, s1, s2], { retention_days: 0, keep_last: 1 });
    expect(r.kept).toEqual(new Set([a1.id, s1.id]));
  });

  // The example: a backup every hour for 90 days (2025-01-01 .. 2025-03-31), evaluated at 2025-04-01T00:00Z.
  const ninety = () => hourly("2025-01-01T00:00:00.000Z", "2025-04-01T00:00:00.000Z");

  it("hourly backups for 90 days, keep 24 hourly / 7 daily / 4 weekly / 6 monthly: exactly 34 survivors", () => {
    const bs = ninety();
    expect(bs).toHaveLength(2160);
    const r = plan(bs, { retention_days: 0, keep_hourly: 24, keep_daily: 7, keep_weekly: 4, keep_monthly: 6 });
    const expected = [
      ...Array.from({ length: 24 }, (_, h) => `2025-03-31T${String(23 - h).padStart(2, "0")}:00:00.000Z`), // hourly
      ...[30, 29, 28, 27, 26, 25].map((d) => `2025-03-${d}T23:00:00.000Z`), // daily (03-31 already kept)
      "2025-03-23T23:00:00.000Z", "2025-03-16T23:00:00.000Z", // weekly W12, W11 (W14 = 03-31, W13 = 03-30 already kept)
      "2025-02-28T23:00:00.000Z", "2025-01-31T23:00:00.000Z", // monthly: only three months have backups
    ];
    expect(r.keptCreated()).toEqual(expected);
    expect(r.remove).toHaveLength(2160 - 34);
    const newest = bs[bs.length - 1]!;
    expect(r.reasons(newest)).toEqual([
      "keep_hourly 2025-03-31T23", "keep_daily 2025-03-31", "keep_weekly 2025-W14", "keep_monthly 2025-03", "newest_completed",
    ]);
    expect(r.reasons(bs.find((b) => b.created_at === "2025-03-30T23:00:00.000Z")!)).toEqual(["keep_daily 2025-03-30", "keep_weekly 2025-W13"]);
    expect(r.reasons(bs.find((b) => b.created_at === "2025-01-31T23:00:00.000Z")!)).toEqual(["keep_monthly 2025-01"]);
  });

  it("the same 90 days with retention_days 7: the last 7 days whole plus the older weekly and monthly picks", () => {
    const r = plan(ninety(), { retention_days: 7, keep_hourly: 24, keep_daily: 7, keep_weekly: 4, keep_monthly: 6 });
    // 2025-03-25T00:00Z is exactly 7 days old, so kept: 7 * 24 backups, then W12, W11, February, January.
    expect(r.keep).toHaveLength(7 * 24 + 4);
    expect(r.keptCreated().slice(-5)).toEqual([
      "2025-03-25T00:00:00.000Z", "2025-03-23T23:00:00.000Z", "2025-03-16T23:00:00.000Z", "2025-02-28T23:00:00.000Z", "2025-01-31T23:00:00.000Z",
    ]);
  });

  it("the same 90 days with every rule off and retention_days 30 keeps 30 days of hourly backups", () => {
    const r = plan(ninety());
    expect(r.keep).toHaveLength(30 * 24); // 03-02T00:00 .. 03-31T23:00; 03-02T00:00 is exactly 30 days old
    expect(r.keptCreated().at(-1)).toBe("2025-03-02T00:00:00.000Z");
  });

  it("agrees with a reference implementation on random histories", () => {
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const int = (max: number) => Math.floor(rand() * (max + 1));
    for (let round = 0; round < 150; round++) {
      const bs = Array.from({ length: 1 + int(60) }, () =>
        backup(NOW.getTime() - Math.floor(rand() * 120 * DAY), {
          source: rand() < 0.7 ? "astrid" : "sky",
          type: (["full", "incremental", "archive"] as const)[int(2)]!,
          status: rand() < 0.1 ? "corrupt" : "completed",
          verify_status: rand() < 0.2 ? "passed" : null,
        }));
      for (const b of bs) if (b.status === "corrupt") b.verify_status = rand() < 0.5 ? "failed" : null;
      const p = policy({
        retention_days: int(40), archive_retention_days: int(120),
        keep_last: int(3), keep_hourly: int(5), keep_daily: int(10), keep_weekly: int(6), keep_monthly: int(4),
      });
      const actual = planRetention(bs, p, NOW);
      const kept = new Set(actual.keep.map((k) => k.backup_id));
      expect(kept).toEqual(referenceKept(bs, p, NOW));
      // Every backup appears exactly once.
      expect(actual.keep.length + actual.remove.length).toBe(bs.length);
      expect(new Set([...kept, ...actual.remove.map((r) => r.backup_id)]).size).toBe(bs.length);
    }
  });

  it("keeping more never removes more: raising any count only adds survivors", () => {
    const bs = hourly("2025-01-01T00:00:00.000Z", "2025-04-01T00:00:00.000Z").filter((_, i) => i % 7 === 0);
    const base = policy({ retention_days: 3, keep_daily: 3, keep_weekly: 2, keep_monthly: 1 });
    const keptBy = (p: RetentionPolicy) => new Set(planRetention(bs, p, NOW).keep.map((k) => k.backup_id));
    const before = keptBy(base);
    for (const field of ["retention_days", "keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly"] as const) {
      const after = keptBy({ ...base, [field]: base[field] + 50 });
      expect([...before].filter((id) => !after.has(id))).toEqual([]);
      expect(after.size).toBeGreaterThan(before.size);
    }
  });
});

describe("planRetention: protections", () => {
  it("never removes the newest verified backup, whatever the policy", () => {
    const verified = daysBefore(400, { verify_status: "passed" });
    const olderVerified = daysBefore(500, { verify_status: "passed" });
    const newer = [daysBefore(300), daysBefore(200)];
    const r = plan([verified, olderVerified, ...newer], { retention_days: 1 });
    expect(r.reasons(verified)).toEqual(["newest_verified"]);
    expect(r.reasons(newer[1]!)).toEqual(["newest_completed"]);
    expect(r.removed).toEqual(new Set([olderVerified.id, newer[0]!.id]));
  });

  it("protects the newest verified backup even when it is an archive", () => {
    const archive = daysBefore(400, { type: "archive", verify_status: "passed" });
    const full = daysBefore(1);
    const r = plan([archive, full]);
    expect(r.reasons(archive)).toEqual(["newest_verified"]);
  });

  it("never removes the newest completed backup, however old", () => {
    const newest = daysBefore(200);
    const older = daysBefore(400);
    const r = plan([older, newest], { keep_daily: 0 });
    expect(r.reasons(newest)).toEqual(["newest_completed"]);
    expect(r.removed).toEqual(new Set([older.id]));
  });

  it("protects the newest completed backup of each database", () => {
    const a = daysBefore(100, { source: "astrid" });
    const s = daysBefore(90, { source: "sky" });
    const r = plan([a, s, daysBefore(110, { source: "astrid" }), daysBefore(95, { source: "sky" })]);
    expect(r.kept).toEqual(new Set([a.id, s.id]));
  });

  it("when the newest completed backup is an archive, also keeps the newest full or incremental (the next backup's parent)", () => {
    const archive = daysBefore(1, { type: "archive" });
    const parent = daysBefore(60, { type: "incremental" });
    const older = daysBefore(70);
    const r = plan([archive, parent, older]);
    expect(r.reasons(archive)).toEqual(["archive_retention_days", "newest_completed"]);
    expect(r.reasons(parent)).toEqual(["dedup_parent"]);
    expect(r.removed).toEqual(new Set([older.id]));
  });

  it("does not protect a corrupt backup as newest, but keeps it while it is younger than retention_days", () => {
    const completed = daysBefore(100);
    const corruptOld = daysBefore(60, { status: "corrupt", verify_status: "failed" });
    const corruptYoung = daysBefore(2, { status: "corrupt", verify_status: "failed" });
    const r = plan([completed, corruptOld, corruptYoung]);
    expect(r.reasons(completed)).toEqual(["newest_completed"]);
    expect(r.reasons(corruptYoung)).toEqual(["retention_days"]);
    expect(r.remove).toEqual([{ backup_id: corruptOld.id, reason: "corrupt and older than 30 days" }]);
  });

  it("does not let a corrupt backup take a keep_* slot from a usable one", () => {
    const corruptEvening = backup("2025-01-10T20:00:00.000Z", { status: "corrupt", verify_status: "failed" });
    const goodMorning = backup("2025-01-10T08:00:00.000Z");
    const goodDayBefore = backup("2025-01-09T08:00:00.000Z");
    const r = plan([corruptEvening, goodMorning, goodDayBefore], { retention_days: 0, keep_last: 1, keep_daily: 2 });
    expect(r.reasons(goodMorning)).toEqual(["keep_last", "keep_daily 2025-01-10", "newest_completed"]);
    expect(r.reasons(goodDayBefore)).toEqual(["keep_daily 2025-01-09"]);
    expect(r.removed).toEqual(new Set([corruptEvening.id]));
  });

  it("removes an old database's corrupt-only history entirely", () => {
    const bs = [daysBefore(40, { status: "corrupt" }), daysBefore(50, { status: "corrupt" })];
    expect(plan(bs).keep).toEqual([]);
  });

  it("keeps pinned backups with the caller's reason", () => {
    const old = daysBefore(400);
    const newest = daysBefore(1);
    const r = plan([old, newest], {}, NOW, new Map([[old.id, "in_use job-1"], ["no-such-backup", "in_use job-2"]]));
    expect(r.reasons(old)).toEqual(["in_use job-1"]);
    expect(r.keep).toHaveLength(2);
  });

  it("keeps a backup whose created_at does not parse, and saying why", () => {
    const odd = backup("not a time");
    const r = plan([odd, daysBefore(1)], { keep_last: 5 });
    expect(r.reasons(odd)).toEqual(["invalid_created_at"]);
  });

  it("keeps everything a backup in the future (clock skew) by age", () => {
    const future = backup(NOW.getTime() + DAY);
    expect(plan([future]).reasons(future)).toEqual(["retention_days", "newest_completed"]);
  });

  it("returns an empty plan for no backups", () => {
    expect(planRetention([], OFF, NOW)).toEqual({ keep: [], remove: [] });
  });

  it("rejects a policy with a negative or fractional number", () => {
    expect(() => planRetention([], policy({ keep_daily: -1 }), NOW)).toThrow(RangeError);
    expect(() => planRetention([], policy({ retention_days: 1.5 }), NOW)).toThrow(/retention_days/);
  });
});

describe("isoWeek", () => {
  const cases: [string, string][] = [
    ["2025-01-01T00:00:00Z", "2025-W01"], // Wednesday
    ["2024-12-30T00:00:00Z", "2025-W01"], // Monday of W01 in the previous calendar year
    ["2024-12-29T23:59:59Z", "2024-W52"],
    ["2021-01-03T12:00:00Z", "2020-W53"], // Sunday, still 2020's 53rd week
    ["2021-01-04T00:00:00Z", "2021-W01"],
    ["2026-12-31T23:59:59Z", "2026-W53"],
    ["2027-01-03T00:00:00Z", "2026-W53"],
    ["2025-03-31T00:00:00Z", "2025-W14"],
  ];
  for (const [at, week] of cases) it(`${at} is ${week}`, () => expect(isoWeek(new Date(at))).toBe(week));
});

/**
 * restic's forget written another way: group by period, take the newest N
 * periods, keep the newest backup of each; plus the age and protection rules.
 */
function referenceKept(bs: RetentionCandidate[], p: RetentionPolicy, now: Date): Set<string> {
  const kept = new Set<string>();
  const newestFirst = (a: RetentionCandidate, b: RetentionCandidate) => Date.parse(b.created_at) - Date.parse(a.created_at) || (a.id < b.id ? 1 : -1);
  for (const db of new Set(bs.map((b) => b.source))) {
    const mine = bs.filter((b) => b.source === db).sort(newestFirst);
    for (const b of mine) {
      const age = now.getTime() - Date.parse(b.created_at);
      if (age <= (b.type === "archive" ? p.archive_retention_days : p.retention_days) * DAY) kept.add(b.id);
    }
    const points = mine.filter((b) => b.type !== "archive" && b.status === "completed");
    const periods: [number, (b: RetentionCandidate) => string][] = [
      [p.keep_last, (b) => b.id],
      [p.keep_hourly, (b) => b.created_at.slice(0, 13)],
      [p.keep_daily, (b) => b.created_at.slice(0, 10)],
      [p.keep_weekly, (b) => isoWeek(new Date(b.created_at))],
      [p.keep_monthly, (b) => b.created_at.slice(0, 7)],
    ];
    for (const [count, key] of periods) {
      const newestOfPeriod = new Map<string, RetentionCandidate>();
      for (const b of points) if (!newestOfPeriod.has(key(b))) newestOfPeriod.set(key(b), b);
      [...newestOfPeriod.values()].slice(0, count).forEach((b) => kept.add(b.id));
    }
    const completed = mine.filter((b) => b.status === "completed");
    const protect = [completed.find((b) => b.verify_status === "passed"), completed[0], completed.find((b) => b.type !== "archive")];
    for (const b of protect) if (b) kept.add(b.id);
  }
  return kept;
}

// ---- POST /backup/database/cleanup ----

describe("POST /backup/database/cleanup with a retention policy", () => {
  beforeEach(resetState);

  const CHUNK_KEY = `chunks/cd/${"cd".repeat(32)}`;

  async function stored(created_at: string, p: Partial<BackupRow> = {}): Promise<BackupRow> {
    const row = await seedBackup({ created_at, ...p });
    await env.BACKUPS.put(row.manifest_key, JSON.stringify({ backup_id: row.id }));
    return row;
  }
  const cleanup = (body: unknown, opts: { env?: Record<string, unknown>; token?: string } = {}) =>
    api("POST", "/backup/database/cleanup", { body, ...opts });
  const remaining = async () => new Set((await allBackupRows()).map((b) => b.id));
  const manifests = async () => new Set((await env.BACKUPS.list({ prefix: "manifests/" })).objects.map((o) => o.key));

  /** One backup a day at 02:00 UTC for the 60 days before today, plus one today. */
  async function sixtyDays(): Promise<BackupRow[]> {
    const today = new Date();
    const base = Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate(), 0, 0, 0);
    const rows: BackupRow[] = [];
    for (let d = 60; d >= 1; d--) rows.push(await stored(new Date(base - d * DAY + 2 * HOUR).toISOString()));
    rows.push(await stored(new Date(Math.max(base, Math.min(Date.now() - 1000, base + 60_000))).toISOString()));
    return rows.reverse(); // newest first
  }

  it("dry run lists what would go and why each survivor stays, and changes nothing", async () => {
    await env.BACKUPS.put(CHUNK_KEY, "chunk");
    const rows = await sixtyDays();
    const before = { rows: await remaining(), manifests: await manifests() };
    const res = await cleanup({ retention_days: 7, keep_daily: 14, dry_run: true });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      dry_run: true, retention_days: 7,
      policy: { retention_days: 7, archive_retention_days: 365, keep_last: 0, keep_hourly: 0, keep_daily: 14, keep_weekly: 0, keep_monthly: 0 },
    });
    // Days 1..6 back are younger than 7 days, plus today: 7 by age; keep_daily covers today and 13 more days.
    expect(res.body.kept).toHaveLength(14);
    expect(res.body.removed).toBe(61 - 14);
    expect(res.body.backup_ids).toEqual(rows.slice(14).map((r) => r.id));
    expect(res.body.removed_detail).toEqual(rows.slice(14).map((r) => ({ backup_id: r.id, reason: "older than 7 days and kept by no keep_* rule" })));
    expect(res.body.kept[0]).toEqual({ backup_id: rows[0]!.id, reasons: ["retention_days", expect.stringMatching(/^keep_daily \d{4}-\d{2}-\d{2}$/), "newest_completed"] });
    expect(res.body.kept[13]).toEqual({ backup_id: rows[13]!.id, reasons: [expect.stringMatching(/^keep_daily /)] });
    expect(await remaining()).toEqual(before.rows);
    expect(await manifests()).toEqual(before.manifests);
  });

  it("a real run removes exactly what the dry run listed: catalog rows and manifests, not chunks", async () => {
    await env.BACKUPS.put(CHUNK_KEY, "chunk");
    const rows = await sixtyDays();
    const dry = await cleanup({ retention_days: 7, keep_daily: 14, keep_monthly: 3, dry_run: true });
    const real = await cleanup({ retention_days: 7, keep_daily: 14, keep_monthly: 3 });
    expect(real.status).toBe(200);
    expect(real.body.dry_run).toBe(false);
    expect(real.body.backup_ids).toEqual(dry.body.backup_ids);
    expect(real.body.kept).toEqual(dry.body.kept);
    const keptIds = new Set<string>(real.body.kept.map((k: { backup_id: string }) => k.backup_id));
    expect(keptIds.size).toBeGreaterThanOrEqual(14);
    expect(await remaining()).toEqual(keptIds);
    expect(await manifests()).toEqual(new Set(rows.filter((r) => keptIds.has(r.id)).map((r) => r.manifest_key)));
    expect(await env.BACKUPS.head(CHUNK_KEY)).not.toBeNull();
    // Nothing left to do the second time.
    expect((await cleanup({ retention_days: 7, keep_daily: 14, keep_monthly: 3 })).body.removed).toBe(0);
  });

  it("takes the policy from DATABASE_KEEP_* and DATABASE_ARCHIVE_RETENTION_DAYS, the request overriding", async () => {
    const rows = await sixtyDays();
    const archive = await stored(isoDaysAgo(20), { type: "archive" });
    const vars = { DATABASE_RETENTION_DAYS: "2", DATABASE_KEEP_LAST: "5", DATABASE_ARCHIVE_RETENTION_DAYS: "10" };
    let res = await cleanup({ dry_run: true }, { env: vars });
    expect(res.body.policy).toEqual({
      retention_days: 2, archive_retention_days: 10, keep_last: 5, keep_hourly: 0, keep_daily: 0, keep_weekly: 0, keep_monthly: 0,
    });
    expect(res.body.kept.map((k: { backup_id: string }) => k.backup_id)).toEqual(rows.slice(0, 5).map((r) => r.id));
    expect(res.body.backup_ids).toContain(archive.id);
    res = await cleanup({ dry_run: true, keep_last: 1, archive_retention_days: 30 }, { env: vars });
    expect(res.body.policy).toMatchObject({ retention_days: 2, keep_last: 1, archive_retention_days: 30 });
    expect(res.body.backup_ids).not.toContain(archive.id);
    expect(res.body.kept.find((k: { backup_id: string }) => k.backup_id === archive.id).reasons).toEqual(["archive_retention_days"]);
  });

  it("keeps the seed's behaviour by default: 30 days, no keep_* rule, archives for a year", async () => {
    const old = await stored(isoDaysAgo(31));
    const young = await stored(isoDaysAgo(29));
    const archive = await stored(isoDaysAgo(200), { type: "archive" });
    const res = await cleanup({});
    expect(res.body).toMatchObject({ retention_days: 30, removed: 1, backup_ids: [old.id] });
    expect(await remaining()).toEqual(new Set([young.id, archive.id]));
  });

  it("limits the cleanup to one database when asked", async () => {
    const astridOld = await stored(isoDaysAgo(50), { source: "astrid" });
    await stored(isoDaysAgo(1), { source: "astrid" });
    const skyOld = await stored(isoDaysAgo(50), { source: "sky" });
    await stored(isoDaysAgo(1), { source: "sky" });
    const res = await cleanup({ database: "sky" });
    expect(res.body).toMatchObject({ database: "sky", backup_ids: [skyOld.id] });
    expect((await remaining()).has(astridOld.id)).toBe(true);
    expect((await remaining()).has(skyOld.id)).toBe(false);
  });

  it("never removes the newest verified backup", async () => {
    const verified = await stored(isoDaysAgo(90), { verify_status: "passed", verified_at: isoDaysAgo(89), verify_depth: "full" });
    const unverified = await stored(isoDaysAgo(80));
    await stored(isoDaysAgo(1));
    const res = await cleanup({ retention_days: 7 });
    expect(res.body.backup_ids).toEqual([unverified.id]);
    expect(res.body.kept).toContainEqual({ backup_id: verified.id, reasons: ["newest_verified"] });
    expect(await env.BACKUPS.head(verified.manifest_key)).not.toBeNull();
  });

  it("spares a backup a queued or running job reads", async () => {
    const restoring = await stored(isoDaysAgo(90));
    const verifying = await stored(isoDaysAgo(85));
    const done = await stored(isoDaysAgo(80));
    await stored(isoDaysAgo(1));
    const restoreJob = await seedJob({ kind: "database.restore", status: "queued", backup_id: restoring.id, params: { backup_id: restoring.id } });
    const verifyJob = await seedJob({ kind: "database.verify", status: "running", backup_id: verifying.id, params: { backup_id: verifying.id, depth: "quick" } });
    await seedJob({ kind: "database.verify", status: "succeeded", backup_id: done.id, params: { backup_id: done.id, depth: "quick" } });
    const res = await cleanup({});
    expect(res.body.backup_ids).toEqual([done.id]);
    expect(res.body.kept).toContainEqual({ backup_id: restoring.id, reasons: [`in_use ${restoreJob.id}`] });
    expect(res.body.kept).toContainEqual({ backup_id: verifying.id, reasons: [`in_use ${verifyJob.id}`] });
  });

  it("audits the policy, the dry-run flag and the removed ids", async () => {
    await stored(isoDaysAgo(40));
    await stored(isoDaysAgo(1));
    await cleanup({ keep_daily: 3, keep_weekly: 2, database: "astrid", dry_run: true });
    const [entry] = await auditRows();
    expect(entry).toMatchObject({ action: "database.cleanup", outcome: "succeeded", target: "astrid: older than 30 days, keep_daily=3 keep_weekly=2" });
    expect(JSON.parse(entry!.detail!)).toEqual({
      dry_run: true, removed: [],
      policy: { retention_days: 30, archive_retention_days: 365, keep_last: 0, keep_hourly: 0, keep_daily: 3, keep_weekly: 2, keep_monthly: 0 },
    });
  });

  const invalid: [string, unknown][] = [
    ["a negative keep_last", { keep_last: -1 }],
    ["a negative keep_hourly", { keep_hourly: -3 }],
    ["a negative keep_daily", { keep_daily: -7 }],
    ["a fractional keep_weekly", { keep_weekly: 1.5 }],
    ["keep_monthly as a string", { keep_monthly: "12" }],
    ["a huge keep_daily", { keep_daily: 1e9 }],
    ["a negative retention_days", { retention_days: -1 }],
    ["archive_retention_days 0", { archive_retention_days: 0 }],
    ["an invalid database name", { source: "Sky-Prod" }],
    ["an unknown field", { keep_yearly: 3 }],
    ["a misspelt field", { keep_dayly: 3 }],
    ["a body that is not an object", [1, 2]],
  ];
  for (const [what, body] of invalid) {
    it(`answers 400 JSON for ${what} and removes nothing`, async () => {
      await stored(isoDaysAgo(400));
      await stored(isoDaysAgo(300));
      const res = await cleanup(body);
      expect(res.status).toBe(400);
      expect(res.headers.get("content-type")).toContain("application/json");
      expect(res.body.error).toEqual({ code: "invalid_request", message: expect.any(String) });
      expect((await remaining()).size).toBe(2);
      expect(await auditRows()).toEqual([]);
    });
  }

  it("answers 400 for a body that is not JSON", async () => {
    await stored(isoDaysAgo(400));
    await stored(isoDaysAgo(300));
    const res = await api("POST", "/backup/database/cleanup", { rawBody: "{keep_daily: 3" });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("invalid_json");
    expect((await remaining()).size).toBe(2);
  });

  it("refuses a viewer token with 403 and removes nothing, dry run or not", async () => {
    await stored(isoDaysAgo(400));
    await stored(isoDaysAgo(300));
    for (const body of [{ keep_last: 0 }, { dry_run: true }]) {
      const res = await cleanup(body, { token: VIEWER });
      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe("forbidden");
    }
    expect((await remaining()).size).toBe(2);
    expect((await manifests()).size).toBe(2);
  });

  it("refuses a request without a token with 401", async () => {
    await stored(isoDaysAgo(400));
    await stored(isoDaysAgo(300));
    const res = await api("POST", "/backup/database/cleanup", { token: null, body: {} });
    expect(res.status).toBe(401);
    expect((await remaining()).size).toBe(2);
  });
});
