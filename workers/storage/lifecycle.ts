// Lifecycle rules for R2 buckets: what R2 itself applies (expiry, transition to
// Infrequent Access, abort of incomplete multipart uploads) through its S3 API,
// plus the expiry of old versions in our version store, which R2 cannot do
// (it has no object versioning) and which our own code enforces from the same
// rule set. Applying is idempotent: the current configuration is read back and
// diffed, and written only when it differs.
//
// What R2 accepts (developers.cloudflare.com/r2/buckets/object-lifecycles and
// /r2/api/s3/api, read 2026-11-25): at most 1,000 rules; actions by age in
// days; the only transition is Standard -> Infrequent Access (STANDARD_IA in
// the S3 API); per-prefix rules, which may overlap (R2's own example has a
// bucket-wide and a prefix abort rule); when an expiry and a transition fall
// within 24 h the expiry wins. Rules take about 24 h to act on existing objects.
import { z } from "zod";
import { diffById, parseRules, type RuleDiff } from "./rule-diff.ts";
import type { S3Client } from "./s3/client.ts";
import { childrenNamed, child, parseXml, textOf, xml, type XmlElement } from "./s3/xml.ts";

export const MAX_R2_LIFECYCLE_RULES = 1000;
/** Infrequent Access is billed for at least 30 days (developers.cloudflare.com/r2/pricing). */
export const IA_MINIMUM_DAYS = 30;

const Days = z.number().int("days must be a whole number").min(1, "days must be at least 1").max(36500, "days must be at most 36500");

/** Storage class names operators may write; R2's S3 API calls Infrequent Access STANDARD_IA. */
const StorageClass = z.string().transform((s, ctx) => {
  if (s === "STANDARD_IA" || s === "InfrequentAccess") return "STANDARD_IA" as const;
  ctx.addIssue({ code: "custom", message: `R2 only transitions to Infrequent Access (STANDARD_IA), not ${JSON.stringify(s).slice(0, 40)}` });
  return z.NEVER;
});

export const LifecycleRule = z.strictObject({
  id: z.string().min(1, "id is empty").max(255, "id is longer than 255 characters").regex(/^[\x20-\x7e]+$/, "id must be printable ASCII"),
  /** Key prefix the rule covers; "" is the whole bucket. */
  prefix: z.string().max(1024, "prefix is longer than 1024 characters").default(""),
  enabled: z.boolean().default(true),
  /** R2 deletes objects this many days after upload. */
  expire_days: Days.optional(),
  /** R2 moves objects to Infrequent Access this many days after upload. */
  transition: z.strictObject({ days: Days, storage_class: StorageClass.default("STANDARD_IA") }).optional(),
  /** R2 aborts multipart uploads still incomplete this many days after they began. */
  abort_multipart_days: Days.optional(),
  /** Our version store drops versions that stopped being current this many days ago (not R2). */
  version_expire_days: Days.optional(),
});
export type LifecycleRule = z.output<typeof LifecycleRule>;

export const LifecycleRules = z.array(LifecycleRule).superRefine((rules, ctx) => {
  const ids = new Set<string>();
  rules.forEach((r, i) => {
    if (ids.has(r.id)) ctx.addIssue({ code: "custom", path: [i, "id"], message: `duplicate rule id ${JSON.stringify(r.id)}` });
    ids.add(r.id);
    if (!r.expire_days && !r.transition && !r.abort_multipart_days && !r.version_expire_days) {
      ctx.addIssue({ code: "custom", path: [i], message: "the rule has no action (expire_days, transition, abort_multipart_days or version_expire_days)" });
    }
    if (r.transition && r.expire_days && r.transition.days >= r.expire_days) {
      ctx.addIssue({
        code: "custom", path: [i, "transition", "days"],
        message: `a transition after ${r.transition.days} days never happens: the objects expire after ${r.expire_days} days`,
      });
    }
  });
  const r2Rules = rules.filter(isR2Rule).length;
  if (r2Rules > MAX_R2_LIFECYCLE_RULES) {
    ctx.addIssue({ code: "custom", path: [], message: `R2 allows at most ${MAX_R2_LIFECYCLE_RULES} lifecycle rules, got ${r2Rules}` });
  }
});

/** Rules that fail validation, with the first problem named; thrown before any request. */
export class LifecycleRulesError extends Error {
  override name = "LifecycleRulesError";
}

export function parseLifecycleRules(input: unknown): LifecycleRule[] {
  return parseRules(LifecycleRules, input, (message) => new LifecycleRulesError(message));
}

/** A rule's part that R2 applies (no version-store action). */
export interface R2LifecycleRule {
  id: string;
  prefix: string;
  enabled: boolean;
  expire_days?: number;
  transition?: { days: number; storage_class: string };
  abort_multipart_days?: number;
  /** Elements of a configuration read back that this model does not express (e.g. Expiration/Date). */
  unsupported?: string[];
}

const isR2Rule = (r: LifecycleRule) => Boolean(r.expire_days || r.transition || r.abort_multipart_days);

export function r2Part(rules: LifecycleRule[]): R2LifecycleRule[] {
  return rules.filter(isR2Rule).map((r) => ({
    id: r.id, prefix: r.prefix, enabled: r.enabled,
    ...(r.expire_days ? { expire_days: r.expire_days } : {}),
    ...(r.transition ? { transition: { days: r.transition.days, storage_class: r.transition.storage_class } } : {}),
    ...(r.abort_multipart_days ? { abort_multipart_days: r.abort_multipart_days } : {}),
  }));
}

/**
 * Days after which the version store may drop a non-current version of `key`:
 * from the enabled rule with the longest prefix that matches the key (the most
 * specific), and among rules with that same prefix the longest period (never
 * delete earlier than a rule asks). undefined: keep versions forever.
 */
export function versionExpiryDays(rules: LifecycleRule[], key: string): number | undefined {
  let best: { prefix: string; days: number } | undefined;
  for (const r of rules) {
    if (!r.enabled || !r.version_expire_days || !key.startsWith(r.prefix)) continue;
    if (!best || r.prefix.length > best.prefix.length || (r.prefix.length === best.prefix.length && r.version_expire_days > best.days)) {
      best = { prefix: r.prefix, days: r.version_expire_days };
    }
  }
  return best?.days;
}

/**
 * Rules R2 would use to delete or move objects of the backup bucket: expiry
 * would make R2 itself delete packs and manifests behind retention's back
 * (and past its safeguards), a transition changes their storage class and
 * minimum billing. Only abort_multipart_days is allowed there. One line per
 * offending rule; empty when the rules may be applied.
 */
export function backupBucketLifecycleProblems(rules: LifecycleRule[]): string[] {
  return rules.flatMap((r) => {
    const actions = [r.expire_days ? "expire_days" : "", r.transition ? "transition" : ""].filter(Boolean);
    return actions.length ? [`rule ${JSON.stringify(r.id)}: ${actions.join(" and ")} not allowed on the backup bucket`] : [];
  });
}

/** Billing caveats that are not errors: R2 accepts them, the operator may not mean them. */
export function lifecycleWarnings(rules: LifecycleRule[]): string[] {
  return rules.flatMap((r) =>
    r.transition && r.expire_days && r.expire_days - r.transition.days < IA_MINIMUM_DAYS
      ? [`rule ${r.id}: objects expire ${r.expire_days - r.transition.days} days after moving to Infrequent Access, which bills at least ${IA_MINIMUM_DAYS} days`]
      : [],
  );
}

// ---- XML ------------------------------------------------------------------

export function lifecycleXml(rules: R2LifecycleRule[]): string {
  const body = rules.map((r) =>
    xml("Rule", [
      xml("ID", r.id),
      xml("Filter", [xml("Prefix", r.prefix)]),
      xml("Status", r.enabled ? "Enabled" : "Disabled"),
      r.expire_days ? xml("Expiration", [xml("Days", r.expire_days)]) : undefined,
      r.transition ? xml("Transition", [xml("Days", r.transition.days), xml("StorageClass", r.transition.storage_class)]) : undefined,
      r.abort_multipart_days ? xml("AbortIncompleteMultipartUpload", [xml("DaysAfterInitiation", r.abort_multipart_days)]) : undefined,
    ]),
  );
  return `<?xml version="1.0" encoding="UTF-8"?><LifecycleConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${body.join("")}</LifecycleConfiguration>`;
}

/** Reads a LifecycleConfiguration document; whatever the model cannot express is listed in `unsupported`. */
export function parseLifecycleXml(text: string): R2LifecycleRule[] {
  const doc = parseXml(text);
  return childrenNamed(doc, "Rule").map((rule, i) => {
    const unsupported: string[] = [];
    const known = new Set(["ID", "Filter", "Prefix", "Status", "Expiration", "Transition", "AbortIncompleteMultipartUpload"]);
    for (const c of rule.children) if (!known.has(c.name)) unsupported.push(c.name);
    const filter = child(rule, "Filter");
    for (const c of filter?.children ?? []) if (c.name !== "Prefix") unsupported.push(`Filter/${c.name}`);
    const prefix = textOf(filter, "Prefix") ?? textOf(rule, "Prefix") ?? "";
    const days = (el: XmlElement | undefined, name: string, where: string) => {
      if (!el) return undefined;
      for (const c of el.children) if (c.name !== name && c.name !== "StorageClass") unsupported.push(`${where}/${c.name}`);
      const n = Number(textOf(el, name));
      return Number.isInteger(n) && n > 0 ? n : undefined;
    };
    const expire = days(child(rule, "Expiration"), "Days", "Expiration");
    const transitionEl = childrenNamed(rule, "Transition");
    if (transitionEl.length > 1) unsupported.push("Transition (more than one)");
    const tDays = days(transitionEl[0], "Days", "Transition");
    const abort = days(child(rule, "AbortIncompleteMultipartUpload"), "DaysAfterInitiation", "AbortIncompleteMultipartUpload");
    return {
      id: textOf(rule, "ID") ?? `(rule ${i + 1} without ID)`,
      prefix,
      enabled: textOf(rule, "Status") === "Enabled",
      ...(expire ? { expire_days: expire } : {}),
      ...(tDays ? { transition: { days: tDays, storage_class: textOf(transitionEl[0], "StorageClass") ?? "" } } : {}),
      ...(abort ? { abort_multipart_days: abort } : {}),
      ...(unsupported.length ? { unsupported } : {}),
    };
  });
}

// ---- diff and apply -------------------------------------------------------

export type LifecycleDiff = RuleDiff<R2LifecycleRule>;

const canonical = (r: R2LifecycleRule) =>
  JSON.stringify([r.prefix, r.enabled, r.expire_days ?? null, r.transition?.days ?? null, r.transition?.storage_class ?? null,
    r.abort_multipart_days ?? null, r.unsupported ?? []]);

/** Rules are matched by id; the order of rules does not matter to R2, so it does not count as a change. */
export function diffLifecycle(current: R2LifecycleRule[], desired: R2LifecycleRule[]): LifecycleDiff {
  return diffById(current, desired, canonical);
}

export const isEmptyDiff = (d: LifecycleDiff) => d.added.length + d.removed.length + d.changed.length === 0;

export interface ApplyResult {
  bucket: string;
  dry_run: boolean;
  /** True when a configuration was written (or deleted) by this call. */
  applied: boolean;
  diff: LifecycleDiff;
  warnings: string[];
}

/** Reads the bucket's lifecycle configuration in this model ([] when it has none). */
export async function readLifecycle(client: S3Client, bucket: string): Promise<R2LifecycleRule[]> {
  const text = await client.getLifecycle(bucket);
  return text === null ? [] : parseLifecycleXml(text);
}

/**
 * Validates `rules` (throws LifecycleRulesError before any request), reads the
 * bucket's configuration, and writes the R2 part only if it differs. With no
 * R2 rules left the configuration is deleted (S3 refuses an empty one). Note:
 * writing replaces R2's default rule (abort multipart uploads after 7 days);
 * include an abort_multipart_days rule to keep that protection.
 */
export async function applyLifecycle(client: S3Client, bucket: string, rules: unknown, opts: { dryRun?: boolean } = {}): Promise<ApplyResult> {
  const valid = parseLifecycleRules(rules);
  const desired = r2Part(valid);
  const current = await readLifecycle(client, bucket);
  const diff = diffLifecycle(current, desired);
  const dryRun = opts.dryRun ?? false;
  let applied = false;
  if (!isEmptyDiff(diff) && !dryRun) {
    if (desired.length) await client.putLifecycle(bucket, lifecycleXml(desired));
    else await client.deleteLifecycle(bucket);
    applied = true;
  }
  return { bucket, dry_run: dryRun, applied, diff, warnings: lifecycleWarnings(valid) };
}

// ---- the version store's half -----------------------------------------------

/** Where the full rule set (with version-store rules) is kept, in the backup bucket. */
export const lifecycleSettingsKey = (bucket: string) => `settings/storage/lifecycle/${bucket}.json`;

export interface StoredLifecycle {
  bucket: string;
  rules: LifecycleRule[];
  updated_at: string;
  updated_by: string;
}

/** Minimal R2 surface (works with the Worker binding and miniflare's). */
interface SettingsStore {
  get(key: string): Promise<{ text(): Promise<string> } | null>;
  put(key: string, value: string, options?: { httpMetadata?: { contentType?: string } }): Promise<unknown>;
}

export async function saveLifecycleRules(store: SettingsStore, stored: StoredLifecycle): Promise<void> {
  await store.put(lifecycleSettingsKey(stored.bucket), JSON.stringify(stored), { httpMetadata: { contentType: "application/json" } });
}

/** The rule set last applied to `bucket` (for the version store: versionExpiryDays(rules, key)); [] when none. */
export async function loadLifecycleRules(store: SettingsStore, bucket: string): Promise<LifecycleRule[]> {
  const obj = await store.get(lifecycleSettingsKey(bucket));
  if (!obj) return [];
  const parsed = LifecycleRules.safeParse((JSON.parse(await obj.text()) as StoredLifecycle).rules);
  return parsed.success ? parsed.data : [];
}
