// Bucket Locks on the backup bucket: R2 retention rules per prefix that refuse
// deletes and overwrites inside the retention window, whoever asks, so a leaked
// admin token (or a bug in our own cleanup) cannot destroy backups. Configured
// through the Cloudflare account API (R2's S3 API has no Object Lock):
//   GET/PUT /accounts/{account_id}/r2/buckets/{bucket}/lock
//   body {"rules":[{"id","enabled","prefix","condition":{"type":"Age","maxAgeSeconds"}|
//                   {"type":"Date","date"}|{"type":"Indefinite"}}]}
// (developers.cloudflare.com/r2/buckets/bucket-locks and the API reference,
// read 2026-11-25: up to 1,000 rules; a rule without prefix covers the bucket;
// where rules overlap the longest retention wins; locks beat lifecycle rules.)
//
// Everything goes through one narrow interface, BucketLockApi, so the rest of
// the code (and the tests) do not depend on how the rules are stored.
import { z } from "zod";
import { diffById, parseRules, type RuleDiff } from "./rule-diff.ts";

export const MAX_LOCK_RULES = 1000;

const Condition = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("Age"), max_age_seconds: z.number().int().min(1).max(100 * 365 * 86400) }),
  z.strictObject({ type: z.literal("Date"), date: z.iso.datetime({ offset: true, message: "date must be an ISO 8601 date-time" }) }),
  z.strictObject({ type: z.literal("Indefinite") }),
]);

export const LockRule = z.strictObject({
  id: z.string().min(1, "id is empty").max(255).regex(/^[\x20-\x7e]+$/, "id must be printable ASCII"),
  /** Key prefix the rule covers; "" is the whole bucket. */
  prefix: z.string().max(1024).default(""),
  enabled: z.boolean().default(true),
  condition: Condition,
});
export type LockRule = z.output<typeof LockRule>;

export const LockRules = z.array(LockRule).max(MAX_LOCK_RULES, `R2 allows at most ${MAX_LOCK_RULES} bucket lock rules`).superRefine((rules, ctx) => {
  const ids = new Set<string>();
  rules.forEach((r, i) => {
    if (ids.has(r.id)) ctx.addIssue({ code: "custom", path: [i, "id"], message: `duplicate rule id ${JSON.stringify(r.id)}` });
    ids.add(r.id);
  });
});

/** Rules that fail validation, with the first problem named; thrown before any request. */
export class LockRulesError extends Error {
  override name = "LockRulesError";
}

export function parseLockRules(input: unknown): LockRule[] {
  return parseRules(LockRules, input, (message) => new LockRulesError(message));
}

/** The one seam to Cloudflare's account API; tests use an in-memory implementation. */
export interface BucketLockApi {
  get(bucket: string): Promise<LockRule[]>;
  put(bucket: string, rules: LockRule[]): Promise<void>;
}

/** An error answer from the Cloudflare API (its own code and message; never the token). */
export class CloudflareApiError extends Error {
  override name = "CloudflareApiError";
  readonly status: number;
  readonly code: number | undefined;
  constructor(status: number, code: number | undefined, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

interface WireRule {
  id: string;
  enabled: boolean;
  prefix?: string;
  condition: { type: "Age"; maxAgeSeconds: number } | { type: "Date"; date: string } | { type: "Indefinite" };
}

const toWire = (r: LockRule): WireRule => ({
  id: r.id, enabled: r.enabled, prefix: r.prefix,
  condition: r.condition.type === "Age" ? { type: "Age", maxAgeSeconds: r.condition.max_age_seconds } : r.condition,
});

function fromWire(w: WireRule): LockRule {
  const c = w.condition;
  const condition: LockRule["condition"] =
    c.type === "Age" ? { type: "Age", max_age_seconds: c.maxAgeSeconds }
    : c.type === "Date" ? { type: "Date", date: new Date(c.date).toISOString() }
    : { type: "Indefinite" };
  return { id: w.id, enabled: w.enabled, prefix: w.prefix ?? "", condition };
}

/** The real implementation: the Cloudflare v4 API with an API token allowed to edit R2 bucket settings. */
export class CloudflareBucketLockApi implements BucketLockApi {
  private readonly base: string;
  private readonly opts: { accountId: string; apiToken: string; jurisdiction?: string; baseUrl?: string };
  constructor(opts: { accountId: string; apiToken: string; jurisdiction?: string; baseUrl?: string }) {
    this.opts = opts;
    this.base = `${opts.baseUrl ?? "https://api.cloudflare.com/client/v4"}/accounts/${encodeURIComponent(opts.accountId)}/r2/buckets`;
  }

  async get(bucket: string): Promise<LockRule[]> {
    const result = (await this.call("GET", bucket)) as { rules?: WireRule[] } | null;
    return (result?.rules ?? []).map(fromWire);
  }

  async put(bucket: string, rules: LockRule[]): Promise<void> {
    await this.call("PUT", bucket, { rules: rules.map(toWire) });
  }

  private async call(method: string, bucket: string, body?: unknown): Promise<unknown> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.opts.apiToken}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (this.opts.jurisdiction) headers["cf-r2-jurisdiction"] = this.opts.jurisdiction;
    let res: Response;
    try {
      res = await fetch(`${this.base}/${encodeURIComponent(bucket)}/lock`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    } catch {
      throw new CloudflareApiError(0, undefined, "could not reach the Cloudflare API");
    }
    let json: { success?: boolean; errors?: { code?: number; message?: string }[]; result?: unknown } | undefined;
    try {
      json = (await res.json()) as typeof json;
    } catch {
      json = undefined;
    }
    if (!res.ok || !json?.success) {
      const first = json?.errors?.[0];
      throw new CloudflareApiError(res.status, first?.code, `Cloudflare API ${method} bucket lock: ${first?.message ?? `HTTP ${res.status}`}`.replaceAll(this.opts.apiToken, "***"));
    }
    return json.result ?? null;
  }
}

// ---- configure, read back, diff ---------------------------------------------

export type LockDiff = RuleDiff<LockRule>;

const canonical = (r: LockRule) => JSON.stringify([r.prefix, r.enabled, r.condition.type,
  r.condition.type === "Age" ? r.condition.max_age_seconds : r.condition.type === "Date" ? new Date(r.condition.date).getTime() : null]);

export function diffLocks(current: LockRule[], desired: LockRule[]): LockDiff {
  return diffById(current, desired, canonical);
}

export interface LockApplyResult {
  bucket: string;
  dry_run: boolean;
  applied: boolean;
  diff: LockDiff;
  /** What the API holds after this call (read back when something was written). */
  rules: LockRule[];
}

/**
 * Makes the bucket's lock rules equal `rules`: reads them, diffs, writes only
 * when different, and reads back what was written. R2 honours a weakened or
 * removed rule at once, so a change that weakens any rule is refused before
 * anything is written (LockWeakeningError, even in a dry run): an admin token
 * can add and lengthen locks, never undo them.
 */
export async function configureLocks(api: BucketLockApi, bucket: string, rules: unknown, opts: { dryRun?: boolean } = {}): Promise<LockApplyResult> {
  const desired = parseLockRules(rules);
  const current = await api.get(bucket);
  const diff = diffLocks(current, desired);
  const weaker = weakenings(diff);
  if (weaker.length) throw new LockWeakeningError(weaker);
  const dryRun = opts.dryRun ?? false;
  const changes = diff.added.length + diff.removed.length + diff.changed.length;
  if (!changes || dryRun) return { bucket, dry_run: dryRun, applied: false, diff, rules: current };
  await api.put(bucket, desired);
  return { bucket, dry_run: false, applied: true, diff, rules: await api.get(bucket) };
}

// ---- only ever stronger --------------------------------------------------------
//
// Whoever holds an admin token must not be able to remove the protection that
// exists against a leaked admin token. So the API only adds or lengthens rules;
// removing, disabling, shortening or narrowing one is an out-of-band step by
// an account administrator (docs/runbook.md, "Weakening a Bucket Lock").

/** A change the API refuses because it weakens a lock; `problems` name each rule. */
export class LockWeakeningError extends Error {
  override name = "LockWeakeningError";
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`bucket lock rules can only be added or lengthened through the API (docs/runbook.md, "Weakening a Bucket Lock"): ${problems.join("; ")}`);
    this.problems = problems;
  }
}

/** Why `after` protects less than `before`, or undefined when it protects at least as much. */
function weakening(before: LockRule, after: LockRule): string | undefined {
  if (!before.enabled) return undefined; // a disabled rule protected nothing
  if (!after.enabled) return "disabled";
  // A shorter prefix covers more keys; any other prefix uncovers some.
  if (!before.prefix.startsWith(after.prefix)) return `prefix ${JSON.stringify(before.prefix)} -> ${JSON.stringify(after.prefix)} uncovers keys`;
  const b = before.condition;
  const a = after.condition;
  if (a.type === "Indefinite") return undefined;
  if (b.type === "Indefinite") return "Indefinite -> time-limited";
  if (a.type !== b.type) return `${b.type} -> ${a.type} is not comparable`;
  if (a.type === "Age" && b.type === "Age" && a.max_age_seconds < b.max_age_seconds) return `max_age_seconds ${b.max_age_seconds} -> ${a.max_age_seconds}`;
  if (a.type === "Date" && b.type === "Date" && Date.parse(a.date) < Date.parse(b.date)) return `date ${b.date} -> ${a.date}`;
  return undefined;
}

/** Every way a diff weakens the current rules: removed enabled rules, and changes that protect less. */
export function weakenings(diff: LockDiff): string[] {
  return [
    ...diff.removed.filter((r) => r.enabled).map((r) => `rule ${JSON.stringify(r.id)}: removed`),
    ...diff.changed.flatMap(({ id, before, after }) => {
      const why = weakening(before, after);
      return why ? [`rule ${JSON.stringify(id)}: ${why}`] : [];
    }),
  ];
}

// ---- for retention and GC -------------------------------------------------------

/**
 * Until when `key`, uploaded at `uploaded`, is locked: "indefinite", a date,
 * or null when no enabled rule covers it. The strictest matching rule wins, as
 * in R2.
 */
export function lockedUntil(rules: LockRule[], key: string, uploaded: Date): Date | "indefinite" | null {
  let until: Date | null = null;
  for (const r of rules) {
    if (!r.enabled || !key.startsWith(r.prefix)) continue;
    const c = r.condition;
    if (c.type === "Indefinite") return "indefinite";
    const t = c.type === "Age" ? new Date(uploaded.getTime() + c.max_age_seconds * 1000) : new Date(c.date);
    if (!until || t > until) until = t;
  }
  return until;
}

/**
 * True when R2 would refuse to delete or overwrite `key` at `now`. Retention
 * and GC call it before deleting so that they skip, rather than fail on,
 * objects still inside their retention window. Pass a `now` a little in the
 * future (e.g. + 1 h) to stay clear of clock skew at the boundary.
 */
export function isLocked(rules: LockRule[], key: string, uploaded: Date, now: Date): boolean {
  const until = lockedUntil(rules, key, uploaded);
  return until === "indefinite" || (until !== null && now < until);
}
