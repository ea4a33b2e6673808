// GET /stats/backups: one source's history as series for the console's
// charts: per backup its logical, stored and new bytes (deduplication shows
// as new << logical) and duration; the restores of it with their durations;
// the RPO over the window (a sawtooth: the age of the newest finished
// restore point at each moment); and for a replicated bucket the measured
// replication lag of each change.
import { z } from "zod";
import type { BackupRow } from "../catalog/schema.ts";
import { openStorageCatalog } from "../catalog/storage-catalog.ts";
import type { KindContext } from "../context.ts";
import { protectionOf } from "../storage/buckets.ts";
import { DOMAINS } from "./domains.ts";
import type { StatsResponse } from "./views.ts";

export const StatsQuery = z.strictObject({
  domain: z.enum(DOMAINS),
  /** A database, "bucket/prefix" of a storage source, an MLflow server or a dataset id. */
  source: z.string().min(1).max(1100),
  days: z.coerce.number().int().min(1).max(90).default(14),
});
export type StatsQuery = z.infer<typeof StatsQuery>;

/** At most this many points per series: the chart stays readable and the Worker's work bounded. */
const MAX_POINTS = 1000;
const PAGE = 100;
const RESTORE_KINDS = ["database.restore", "ml.restore", "training_data.restore"];

interface Point {
  id: string;
  type: string;
  created_at: string;
  finished_at: string;
  duration_ms: number;
  logical_bytes: number;
  stored_bytes: number | null;
  new_bytes: number;
}

async function backupPoints(ctx: KindContext, q: StatsQuery, since: string): Promise<Point[]> {
  const out: Point[] = [];
  if (q.domain === "storage") {
    const slash = q.source.indexOf("/");
    const [bucket, prefix] = slash < 0 ? [q.source, ""] : [q.source.slice(0, slash), q.source.slice(slash + 1)];
    const storage = openStorageCatalog(ctx.env.CATALOG);
    let before: string | undefined;
    while (out.length < MAX_POINTS) {
      const page = await storage.listSnapshots({ bucket, limit: PAGE, ...(before ? { before } : {}) });
      for (const s of page) {
        if (s.created_at < since) return out;
        if (s.prefix !== prefix) continue;
        out.push({
          id: s.id, type: s.parent_id ? "incremental" : "full", created_at: s.created_at, finished_at: s.finished_at,
          duration_ms: s.duration_ms, logical_bytes: s.bytes, stored_bytes: null, new_bytes: s.copied_bytes,
        });
      }
      if (page.length < PAGE) return out;
      before = page[page.length - 1]!.id;
    }
    return out;
  }
  let cursor: { created_at: string; id: string } | undefined;
  while (out.length < MAX_POINTS) {
    const page: BackupRow[] = await ctx.catalog.listBackups({ domain: q.domain, source: q.source, limit: PAGE, ...(cursor ? { cursor } : {}) });
    for (const b of page) {
      if (b.created_at < since) return out;
      out.push({
        id: b.id, type: b.type, created_at: b.created_at, finished_at: b.finished_at, duration_ms: b.duration_ms,
        logical_bytes: b.logical_bytes, stored_bytes: b.stored_bytes, new_bytes: b.new_stored_bytes,
      });
    }
    if (page.length < PAGE) return out;
    const last = page[page.length - 1]!;
    cursor = { created_at: last.created_at, id: last.id };
  }
  return out;
}

/**
 * The RPO as it was: at each moment, the age of the newest restore point
 * that had finished. Drawn from its corners: just before a point finishes
 * (the age of the one before) and just after (its own age at finishing).
 */
export function rpoSeries(points: { created_at: string; finished_at: string }[], since: string, now: Date) {
  const byFinish = [...points].sort((a, b) => (a.finished_at < b.finished_at ? -1 : 1));
  const minutes = (from: string, at: string) => Math.round(((Date.parse(at) - Date.parse(from)) / 60_000) * 10) / 10;
  const out: { at: string; minutes: number }[] = [];
  let newest: string | null = null;
  for (const p of byFinish) {
    if (newest !== null && p.finished_at >= since) out.push({ at: p.finished_at, minutes: minutes(newest, p.finished_at) });
    if (newest === null || p.created_at > newest) newest = p.created_at;
    if (p.finished_at >= since) out.push({ at: p.finished_at, minutes: minutes(newest, p.finished_at) });
  }
  if (newest !== null) out.push({ at: now.toISOString(), minutes: minutes(newest, now.toISOString()) });
  return out;
}

export async function backupStats(ctx: KindContext, q: StatsQuery): Promise<z.infer<typeof StatsResponse>> {
  const since = new Date(ctx.now.getTime() - q.days * 86_400_000).toISOString();
  const points = (await backupPoints(ctx, q, since)).reverse(); // oldest first, as charts draw

  const ids = new Set(points.map((p) => p.id));
  const restores: { job_id: string; backup_id: string; finished_at: string; duration_ms: number; bytes: number | null }[] = [];
  if (q.domain !== "storage") {
    for (const kind of RESTORE_KINDS) {
      for (const j of await ctx.catalog.listJobs({ status: "succeeded", kind, limit: 200 })) {
        if (!j.backup_id || !ids.has(j.backup_id) || !j.finished_at || j.finished_at < since) continue;
        const r = JSON.parse(j.result ?? "{}") as { duration_ms?: number; bytes?: number };
        const ms = typeof r.duration_ms === "number" ? r.duration_ms : Date.parse(j.finished_at) - Date.parse(j.started_at ?? j.created_at);
        restores.push({ job_id: j.id, backup_id: j.backup_id, finished_at: j.finished_at, duration_ms: Math.round(ms), bytes: typeof r.bytes === "number" ? r.bytes : null });
      }
    }
    restores.sort((a, b) => (a.finished_at < b.finished_at ? -1 : 1));
  }

  let replicationLag: { at: string; seconds: number }[] = [];
  let replica: string | null = null;
  if (q.domain === "storage") {
    const bucket = q.source.split("/")[0]!;
    const storage = openStorageCatalog(ctx.env.CATALOG);
    replica = (await protectionOf(ctx.config, storage, bucket)).replica ?? null;
    if (replica) {
      const lags = await storage.replicationLags(bucket, new Date(since));
      replicationLag = lags.sort((a, b) => (a.applied_at < b.applied_at ? -1 : 1)).slice(-MAX_POINTS)
        .map((l) => ({ at: l.applied_at, seconds: l.lag_ms / 1000 }));
    }
  }
  return {
    domain: q.domain, source: q.source, days: q.days, since,
    rpo_target_minutes: ctx.config.rpo_target_minutes,
    backups: points,
    restores,
    rpo: rpoSeries(points, since, ctx.now),
    replica,
    replication_lag: replicationLag,
  };
}
