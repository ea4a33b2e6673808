// Retention planning: which backups a cleanup keeps, which it removes, and why.
// Pure (no I/O, `now` passed in) so that every rule can be tested exhaustively;
// cleanup.ts does the reading and deleting.
//
// The policy, evaluated per database:
//
// - Archives (type "archive") are kept while younger than
//   `archive_retention_days`; no other age or keep_* rule applies to them.
// - Full and incremental backups are restore points of one series (in format 1
//   each is a complete dump, docs/format.md), so the rules treat them alike:
//   - `retention_days`: everything younger than N days is kept (a backup exactly
//     N days old is kept, one a millisecond older is not);
//   - `keep_last`, `keep_hourly`, `keep_daily`, `keep_weekly`, `keep_monthly`:
//     restic `forget` semantics. Going from the newest backup to the oldest,
//     each rule keeps the newest backup of each of the last N hours / days / ISO
//     weeks / months *that have backups* (keep_last: the N newest). Periods are
//     UTC calendar periods. A backup may be kept by several rules; 0 turns a
//     rule off. (Unlike restic 0.17+, the oldest backup is not kept additionally
//     when a rule has periods left over.)
//   - A corrupt backup (status "corrupt", a verify found damage) is kept by
//     `retention_days` like any other, so it can be examined, but it never fills
//     a keep_* slot: a period's slot goes to its newest *usable* backup, else a
//     damaged backup would push the good one out.
// - Whatever the policy says, these survive (corrupt backups are never "newest"):
//   - the newest backup with a passed verification (`newest_verified`);
//   - the newest completed backup, of any type (`newest_completed`);
//   - the newest completed full or incremental backup (`dedup_parent`): the
//     next backup's parent manifest (jobs/dispatch.ts), which differs from the
//     newest completed one when that is an archive;
//   - backups the caller pins, e.g. those a queued or running job reads.

export interface RetentionPolicy {
  /** Keep every full or incremental backup younger than this many days. */
  retention_days: number;
  /** Keep every archive younger than this many days (archives are not subject to keep_*). */
  archive_retention_days: number;
  keep_last: number;
  keep_hourly: number;
  keep_daily: number;
  keep_weekly: number;
  keep_monthly: number;
}

/** The fields of a catalog row (BackupRow) that retention looks at. */
export interface RetentionCandidate {
  id: string;
  source: string;
  type: "full" | "incremental" | "archive";
  status: "completed" | "corrupt";
  created_at: string;
  verify_status: "passed" | "failed" | null;
}

export interface RetentionPlan {
  keep: { backup_id: string; reasons: string[] }[];
  remove: { backup_id: string; reason: string }[];
}

const DAY_MS = 86_400_000;

export const GFS_RULES = ["keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly"] as const;
export type GfsRule = (typeof GFS_RULES)[number];

/** The period a backup falls in, per rule; a rule keeps the newest backup of each of its last N periods. */
const PERIOD: Record<GfsRule, (t: Date, id: string) => string> = {
  keep_last: (_t, id) => id, // every backup is its own period
  keep_hourly: (t) => t.toISOString().slice(0, 13), // 2025-01-31T05
  keep_daily: (t) => t.toISOString().slice(0, 10), // 2025-01-31
  keep_weekly: isoWeek, // 2025-W05
  keep_monthly: (t) => t.toISOString().slice(0, 7), // 2025-01
};

/**
 * Decides, for every backup given, whether a cleanup keeps it (with every
 * reason that applies) or removes it (with the reason). Both lists are newest
 * first; every input backup appears in exactly one of them.
 *
 * `pinned` maps backup ids that must survive to the reason (e.g. "in_use job-…").
 */
export function planRetention(
  backups: readonly RetentionCandidate[],
  policy: RetentionPolicy,
  now: Date,
  pinned: ReadonlyMap<string, string> = new Map(),
): RetentionPlan {
  checkPolicy(policy);
  const sorted = backups
    .map((b) => ({ b, t: Date.parse(b.created_at) }))
    .sort((x, y) => compareNewestFirst(x.t, y.t) || (x.b.id < y.b.id ? 1 : x.b.id > y.b.id ? -1 : 0));

  const reasons = new Map<string, string[]>(sorted.map(({ b }) => [b.id, []]));
  const keep = (id: string, reason: string) => reasons.get(id)!.push(reason);

  const byDatabase = new Map<string, typeof sorted>();
  for (const entry of sorted) {
    const list = byDatabase.get(entry.b.source) ?? [];
    list.push(entry);
    byDatabase.set(entry.b.source, list);
  }

  for (const list of byDatabase.values()) {
    // A time that does not parse cannot be aged: keep the backup and say why.
    for (const { b, t } of list) if (Number.isNaN(t)) keep(b.id, "invalid_created_at");
    const valid = list.filter(({ t }) => !Number.isNaN(t));

    // Age rules.
    for (const { b, t } of valid) {
      const age = now.getTime() - t;
      if (b.type === "archive") {
        if (age <= policy.archive_retention_days * DAY_MS) keep(b.id, "archive_retention_days");
      } else if (age <= policy.retention_days * DAY_MS) {
        keep(b.id, "retention_days");
      }
    }

    // keep_* rules over the usable full and incremental backups, newest first.
    const points = valid.filter(({ b }) => b.type !== "archive" && b.status === "completed");
    for (const rule of GFS_RULES) {
      let left = policy[rule];
      let last: string | undefined;
      for (const { b, t } of points) {
        if (left === 0) break;
        const period = PERIOD[rule](new Date(t), b.id);
        if (period === last) continue;
        last = period;
        left--;
        keep(b.id, rule === "keep_last" ? rule : `${rule} ${period}`);
      }
    }

    // Protections (list is newest first, so find() is the newest).
    const completed = list.filter(({ b }) => b.status === "completed");
    const newestVerified = completed.find(({ b }) => b.verify_status === "passed");
    if (newestVerified) keep(newestVerified.b.id, "newest_verified");
    const newestCompleted = completed[0];
    if (newestCompleted) keep(newestCompleted.b.id, "newest_completed");
    const parent = completed.find(({ b }) => b.type !== "archive");
    if (parent && parent !== newestCompleted) keep(parent.b.id, "dedup_parent");
  }

  for (const [id, reason] of pinned) reasons.get(id)?.push(reason);

  const plan: RetentionPlan = { keep: [], remove: [] };
  for (const { b } of sorted) {
    const why = reasons.get(b.id)!;
    if (why.length > 0) plan.keep.push({ backup_id: b.id, reasons: why });
    else plan.remove.push({ backup_id: b.id, reason: removalReason(b, policy) });
  }
  return plan;
}

function removalReason(b: RetentionCandidate, policy: RetentionPolicy): string {
  if (b.type === "archive") return `archive older than ${policy.archive_retention_days} days`;
  const gfs = GFS_RULES.some((r) => policy[r] > 0);
  if (b.status === "corrupt") return `corrupt and older than ${policy.retention_days} days`;
  return `older than ${policy.retention_days} days${gfs ? " and kept by no keep_* rule" : ""}`;
}

/** Newest first; unparseable times (NaN) last. */
function compareNewestFirst(a: number, b: number): number {
  if (Number.isNaN(a) || Number.isNaN(b)) return Number.isNaN(a) ? (Number.isNaN(b) ? 0 : 1) : -1;
  return b - a;
}

/** ISO 8601 week of a UTC time, as "YYYY-Www" (the week's year may differ from the calendar year). */
export function isoWeek(t: Date): string {
  const day = Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), t.getUTCDate());
  const weekday = (t.getUTCDay() + 6) % 7; // Monday 0 … Sunday 6
  const thursday = new Date(day + (3 - weekday) * DAY_MS); // the week belongs to its Thursday's year
  const year = thursday.getUTCFullYear();
  const week = Math.floor((thursday.getTime() - Date.UTC(year, 0, 1)) / DAY_MS / 7) + 1;
  return `${year}-W${String(week).padStart(2, "0")}`;
}

function checkPolicy(policy: RetentionPolicy): void {
  const fields = ["retention_days", "archive_retention_days", ...GFS_RULES] as const;
  for (const f of fields) {
    const v = policy[f];
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`retention policy ${f}: a non-negative integer, not ${v}`);
  }
}

/** The keep_* rules that are on, as "keep_daily=7 keep_weekly=4" (empty when none is). */
export function describeGfs(policy: RetentionPolicy): string {
  return GFS_RULES.filter((r) => policy[r] > 0).map((r) => `${r}=${policy[r]}`).join(" ");
}
