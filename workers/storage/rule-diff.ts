// Idempotent configuration (lifecycle rules, Bucket Lock rules): validate
// what is wanted, read what is there, diff the two by rule id, write only
// when they differ.
import type { z } from "zod";

/** Validates rules before any request; the first problem, named by its path under "rules", becomes `toError`'s message. */
export function parseRules<T>(schema: z.ZodType<T>, input: unknown, toError: (message: string) => Error): T {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  throw toError(`${issue.path.length ? `rules.${issue.path.join(".")}: ` : ""}${issue.message}`);
}

export interface RuleDiff<T> {
  added: T[];
  removed: T[];
  changed: { id: string; before: T; after: T }[];
  unchanged: string[];
}

/** Rules are matched by id; order does not count as a change. `canonical` says what "the same rule" means. */
export function diffById<T extends { id: string }>(current: T[], desired: T[], canonical: (r: T) => string): RuleDiff<T> {
  const before = new Map(current.map((r) => [r.id, r]));
  const diff: RuleDiff<T> = { added: [], removed: [], changed: [], unchanged: [] };
  for (const r of desired) {
    const old = before.get(r.id);
    if (!old) diff.added.push(r);
    else if (canonical(old) !== canonical(r)) diff.changed.push({ id: r.id, before: old, after: r });
    else diff.unchanged.push(r.id);
    before.delete(r.id);
  }
  diff.removed.push(...before.values());
  return diff;
}
