// storage.offsite: the whole backup bucket (or a prefix) copied to the
// off-site S3 provider, one listing page per step (offsite.ts does a page).
// Objects already there with the same size and source etag are skipped, so a
// rerun, or a resumed step, copies only what is new.
import { z } from "zod";
import type { StepContext, StepOutcome } from "../jobs/kind.ts";
import { syncOffsitePage } from "./offsite.ts";
import { offsiteTarget } from "./ops-settings.ts";

export const OffsiteParams = z.object({ prefix: z.string() });
export type OffsiteParams = z.infer<typeof OffsiteParams>;

interface OffsiteState {
  cursor?: string;
  totals: { listed: number; copied: number; skipped: number; bytes: number; multipart: number; changed: number };
  /** Keys the destination cannot take, reported every pass (the first 50). */
  failed: { key: string; error: string }[];
}

export async function offsiteStep(ctx: StepContext<OffsiteParams>): Promise<StepOutcome> {
  const p = ctx.params;
  // Not configured: an AppError, so the job fails at once rather than retrying.
  const target = offsiteTarget(ctx.config);
  const state = (ctx.state as OffsiteState | undefined) ?? { totals: { listed: 0, copied: 0, skipped: 0, bytes: 0, multipart: 0, changed: 0 }, failed: [] };
  const page = await syncOffsitePage(ctx.env.BACKUPS, target, {
    prefix: p.prefix || undefined, cursor: state.cursor, limit: ctx.config.storage_page_size,
    multipartThreshold: ctx.config.storage_multipart_threshold_bytes, partSize: ctx.config.storage_part_size_bytes,
  });
  const t = state.totals;
  t.listed += page.listed; t.copied += page.copied; t.skipped += page.skipped; t.bytes += page.bytes;
  t.multipart += page.multipart; t.changed += page.changed.length;
  state.failed = [...state.failed, ...page.failed].slice(0, 50);
  if (page.next_cursor) {
    state.cursor = page.next_cursor;
    return { next: state, progress: { phase: "copying off-site", bytes: t.bytes, chunks: t.copied } };
  }
  const result = { kind: "storage.offsite", destination: target.bucket, ...t, failed: state.failed };
  if (state.failed.length) return { failed: { code: "offsite_incomplete", message: `${state.failed.length} objects could not be copied off-site (see result.failed)` }, result };
  return { done: result };
}
