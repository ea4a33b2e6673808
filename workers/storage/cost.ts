// Cost report for an R2 bucket: objects and bytes per storage class, listed
// through the Worker's R2 binding, and the monthly storage estimate from R2's
// published prices. A bucket of millions of objects does not fit one request:
// each call lists a bounded number of pages and returns a cursor that carries
// the running totals, so the last call holds the whole bucket's report.
import { base64url, fromBase64url } from "../crypto.ts";

/**
 * R2's published prices, developers.cloudflare.com/r2/pricing (read
 * 2026-11-25): storage $0.015 per GB-month Standard, $0.01 per GB-month
 * Infrequent Access; the free tier (10 GB-month a month) covers Standard only;
 * usage is rounded up to the next whole billing unit; Infrequent Access bills
 * at least 30 days and charges $0.01/GB retrieval. Operations (Class A/B) are
 * not estimated: a listing says nothing about how often objects are read.
 */
export const R2_PRICES = {
  source: "https://developers.cloudflare.com/r2/pricing/",
  as_of: "2026-11-25",
  currency: "USD",
  storage_per_gb_month: { Standard: 0.015, InfrequentAccess: 0.01 },
  free_gb_month: { Standard: 10, InfrequentAccess: 0 },
  /** Cloudflare does not say whether its GB is 10^9 or 2^30 bytes; the estimate takes 10^9 (the larger bill). */
  bytes_per_gb: 1e9,
} as const;

export type StorageClassName = keyof typeof R2_PRICES.storage_per_gb_month;
const CLASSES: StorageClassName[] = ["Standard", "InfrequentAccess"];

export interface ClassTotals {
  objects: number;
  bytes: number;
}
export type Totals = Record<StorageClassName, ClassTotals>;

/** The part of R2Bucket this module uses (the Worker binding and miniflare's both fit). */
export interface ListableBucket {
  list(options?: { limit?: number; cursor?: string; prefix?: string }): Promise<{
    objects: { key: string; size: number; storageClass?: string }[];
    truncated: boolean;
    cursor?: string;
  }>;
}

export const emptyTotals = (): Totals => ({ Standard: { objects: 0, bytes: 0 }, InfrequentAccess: { objects: 0, bytes: 0 } });

/** Adds listed objects to the totals; an object without a known class counts as Standard (R2's default). */
export function addObjects(totals: Totals, objects: { size: number; storageClass?: string }[]): Totals {
  for (const o of objects) {
    const cls: StorageClassName = o.storageClass === "InfrequentAccess" ? "InfrequentAccess" : "Standard";
    totals[cls].objects += 1;
    totals[cls].bytes += o.size;
  }
  return totals;
}

export interface ClassCost extends ClassTotals {
  storage_class: StorageClassName;
  gb: number;
  billable_gb_month: number;
  monthly_usd: number;
}

/**
 * Monthly storage cost if the bucket stays this size all month. The free tier
 * is per account, so `applyFreeTier` is for a report of the one bucket that
 * uses it; off by default so reports of several buckets do not count it twice.
 */
export function estimate(totals: Totals, opts: { applyFreeTier?: boolean } = {}): { classes: ClassCost[]; monthly_usd: number } {
  const classes = CLASSES.map((storage_class) => {
    const t = totals[storage_class];
    const gb = t.bytes / R2_PRICES.bytes_per_gb;
    const free = opts.applyFreeTier ? R2_PRICES.free_gb_month[storage_class] : 0;
    const billable = Math.ceil(Math.max(0, gb - free));
    return { storage_class, ...t, gb: round(gb, 6), billable_gb_month: billable, monthly_usd: round(billable * R2_PRICES.storage_per_gb_month[storage_class], 4) };
  });
  return { classes, monthly_usd: round(classes.reduce((s, c) => s + c.monthly_usd, 0), 4) };
}

const round = (n: number, digits: number) => Math.round(n * 10 ** digits) / 10 ** digits;

export interface CostReport {
  bucket: string;
  prefix?: string;
  /** False while more pages remain: call again with next_cursor. */
  complete: boolean;
  next_cursor?: string;
  classes: ClassCost[];
  monthly_usd: number;
  prices: typeof R2_PRICES;
  free_tier_applied: boolean;
}

export class CostCursorError extends Error {
  override name = "CostCursorError";
}

interface CursorState {
  c: string;
  p: string;
  t: [number, number, number, number];
}

function encodeCursor(s: CursorState): string {
  return base64url(new TextEncoder().encode(JSON.stringify(s)));
}

function decodeCursor(cursor: string, prefix: string): { r2: string; totals: Totals } {
  try {
    const s = JSON.parse(new TextDecoder().decode(fromBase64url(cursor))) as CursorState;
    if (typeof s.c === "string" && s.p === prefix && Array.isArray(s.t) && s.t.length === 4 && s.t.every((n) => Number.isSafeInteger(n) && n >= 0)) {
      const [so, sb, io, ib] = s.t;
      return { r2: s.c, totals: { Standard: { objects: so, bytes: sb }, InfrequentAccess: { objects: io, bytes: ib } } };
    }
  } catch {
    // fall through
  }
  throw new CostCursorError("cursor: not a cursor this report returned (or for another prefix)");
}

/**
 * One bounded step of the report: at most `pages` list calls of up to
 * 1,000 objects. Pass the returned next_cursor to go on; totals travel in it.
 */
export async function costReport(
  bucket: ListableBucket, name: string,
  opts: { cursor?: string; prefix?: string; pages?: number; pageSize?: number; applyFreeTier?: boolean } = {},
): Promise<CostReport> {
  const prefix = opts.prefix ?? "";
  const start = opts.cursor ? decodeCursor(opts.cursor, prefix) : { r2: undefined, totals: emptyTotals() };
  const totals = start.totals;
  let cursor = start.r2;
  let truncated = true;
  for (let page = 0; page < (opts.pages ?? 10) && truncated; page++) {
    const listed = await bucket.list({ limit: opts.pageSize ?? 1000, ...(cursor ? { cursor } : {}), ...(prefix ? { prefix } : {}) });
    addObjects(totals, listed.objects);
    truncated = listed.truncated;
    cursor = listed.truncated ? listed.cursor : undefined;
  }
  const { classes, monthly_usd } = estimate(totals, { applyFreeTier: opts.applyFreeTier });
  const next = truncated && cursor
    ? encodeCursor({ c: cursor, p: prefix, t: [totals.Standard.objects, totals.Standard.bytes, totals.InfrequentAccess.objects, totals.InfrequentAccess.bytes] })
    : undefined;
  return {
    bucket: name, ...(prefix ? { prefix } : {}), complete: !next, ...(next ? { next_cursor: next } : {}),
    classes, monthly_usd, prices: R2_PRICES, free_tier_applied: Boolean(opts.applyFreeTier),
  };
}
