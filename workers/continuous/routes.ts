// Admin routes of continuous archiving: the recovery timeline of a database
// (recoverable windows and the gaps between them, with their causes) and the
// point-in-time restore.
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../context.ts";
import { requireRole } from "../auth.ts";
import { AppError, badRequest } from "../shared/errors.ts";
import { Lsn } from "../shared/format.ts";
import { DatabaseName } from "../shared/protocol.ts";
import { accepted, AcceptedResponse, kindContext, parseJson, parseQuery } from "../http.ts";
import { submitJob } from "../jobs/submit.ts";
import { restoreTarget } from "../database/routes.ts";
import { freshestStream, openContinuousCatalog, rpoSeconds } from "../catalog/continuous-catalog.ts";
import type { Catalog } from "../catalog/catalog.ts";
import type { ContinuousStreamRow } from "../catalog/schema.ts";
import { continuousRestore, lsnValue } from "./kinds.ts";
import { parseMicros } from "./protocol.ts";

export const TimelineQuery = z.strictObject({ database: DatabaseName });

export const PitrRequest = z.strictObject({
  database: DatabaseName,
  target_time: z.string().refine((s) => parseMicros(s) !== undefined, "target_time: an ISO 8601 time").optional(),
  target_lsn: Lsn.optional(),
  target: z.string().min(1).max(2048),
  replace: z.boolean().default(false),
}).refine((b) => (b.target_time === undefined) !== (b.target_lsn === undefined), "give exactly one of target_time and target_lsn");

/** What one stream (a base and its segments) can restore: any moment from its base's snapshot to the last moment it covers. */
export const StreamSpan = z.strictObject({
  stream_id: z.string(),
  /** The base backup the stream starts from (restores start by restoring it). */
  base_backup_id: z.string(),
  start: z.string(),
  end: z.string(),
  start_lsn: z.string().nullable(),
  end_lsn: z.string().nullable(),
  segments: z.number().int(),
  /** Bytes the segments added to the repository (compressed, encrypted). */
  stored_bytes: z.number(),
  live: z.boolean(),
  /** Tables the stream does not carry (no primary key or replica identity, or owned by another role): base backups only, with the fix. */
  uncovered: z.array(z.strictObject({ table: z.string(), fix: z.string() })),
});
export type StreamSpan = z.infer<typeof StreamSpan>;

/**
 * A recoverable window: streams whose spans overlap (a re-base starts a new
 * stream before the old one ends) merged into one, every moment of which can
 * be restored. Its stream_id and base_backup_id are its newest stream's (what
 * a restore near its end starts from); segments and stored_bytes are summed.
 */
export const Window = StreamSpan.extend({ streams: z.array(StreamSpan) });
export type Window = z.infer<typeof Window>;

/** GET /backup/database/timeline's answer. */
export const TimelineResponse = z.strictObject({
  database: z.string(),
  windows: z.array(Window),
  gaps: z.array(z.strictObject({ from: z.string().nullable(), until: z.string().nullable(), cause: z.string(), detail: z.string().optional() })),
  rpo_seconds: z.number().nullable(),
});

/** POST /backups/restore-pitr's answer: the job, and the stream and base it restores from. */
export const PitrAccepted = AcceptedResponse.extend({ stream_id: z.string(), base_backup_id: z.string() });

/** A database's streams that can still restore (a recorded base whose backup is still kept), their merged windows, and its gaps. */
export async function timeline(env: AppEnv["Bindings"], catalog: Catalog, database: string) {
  const store = openContinuousCatalog(env.CATALOG);
  const spans: StreamSpan[] = [];
  const live: ContinuousStreamRow[] = [];
  for (const s of await store.streams(database)) {
    if (!s.consistent_at || !s.covered_until) continue;
    if (!(await catalog.getBackup(s.id))) continue; // its base went with retention
    const segments = await store.segments(s.id);
    spans.push({
      stream_id: s.id, base_backup_id: s.id, start: s.consistent_at, end: s.covered_until, start_lsn: s.consistent_lsn,
      end_lsn: s.last_end_lsn ?? s.consistent_lsn, segments: segments.length, stored_bytes: segments.reduce((n, x) => n + x.stored_bytes, 0),
      live: s.status === "active", uncovered: s.uncovered ? (JSON.parse(s.uncovered) as StreamSpan["uncovered"]) : [],
    });
    if (s.status === "active") live.push(s);
  }
  const gaps = (await store.gaps(database)).map((g) => ({ from: g.from_time, until: g.until_time, cause: g.cause, ...(g.detail ? { detail: g.detail } : {}) }));
  return { database, spans, windows: mergeSpans(spans), gaps, live };
}

/** Spans merged where they overlap or touch (ordered by start). */
export function mergeSpans(spans: StreamSpan[]): Window[] {
  const micros = (iso: string) => parseMicros(iso)!;
  const windows: Window[] = [];
  for (const span of [...spans].sort((a, b) => Number(micros(a.start) - micros(b.start)))) {
    const last = windows.at(-1);
    if (!last || micros(span.start) > micros(last.end)) {
      windows.push({ ...span, streams: [span] });
      continue;
    }
    const later = micros(span.end) > micros(last.end);
    Object.assign(last, {
      stream_id: span.stream_id, base_backup_id: span.base_backup_id, uncovered: span.uncovered,
      end: later ? span.end : last.end, end_lsn: later ? span.end_lsn : last.end_lsn,
      segments: last.segments + span.segments, stored_bytes: last.stored_bytes + span.stored_bytes, live: last.live || span.live,
      streams: [...last.streams, span],
    });
  }
  return windows;
}

export const continuousRoutes = new Hono<AppEnv>();

continuousRoutes.get("/backup/database/timeline", requireRole("viewer"), async (c) => {
  const q = parseQuery(c, TimelineQuery);
  if (!(q.database in c.get("config").databases)) throw badRequest(`database "${q.database}" is not configured (BACKUP_DATABASES)`);
  const t = await timeline(c.env, c.get("catalog"), q.database);
  const now = new Date();
  const best = freshestStream(t.live);
  const rpo = best ? rpoSeconds(best, now) : null;
  const answer: z.infer<typeof TimelineResponse> = { database: t.database, windows: t.windows, gaps: t.gaps, rpo_seconds: rpo === null ? null : Math.round(rpo) };
  return c.json(answer);
});

continuousRoutes.post("/backups/restore-pitr", requireRole("admin"), async (c) => {
  const body = await parseJson(c, PitrRequest);
  if (!(body.database in c.get("config").databases)) throw badRequest(`database "${body.database}" is not configured (BACKUP_DATABASES)`);
  const { spans } = await timeline(c.env, c.get("catalog"), body.database);
  const window = pickWindow(spans, body);
  const target = await restoreTarget(c, body.target);
  const point = body.target_time ?? body.target_lsn!;
  const submitted = await submitJob(kindContext(c), continuousRestore, {
    database: body.database, stream_id: window.stream_id, replace: body.replace, ...target,
    ...(body.target_time ? { target_time: body.target_time } : { target_lsn: body.target_lsn }),
  }, { backup_id: window.stream_id, actor: c.get("actor"), target: `${body.database} at ${point} -> ${target.target_label}` });
  const answer: z.infer<typeof PitrAccepted> = { ...accepted(submitted), stream_id: window.stream_id, base_backup_id: window.base_backup_id };
  return c.json(answer, 202);
});

/**
 * The stream to restore from: of those whose span holds the target, the one
 * with the newest base (the shortest replay; spans overlap after a re-base).
 * A target outside every span is refused (422), naming the nearest
 * recoverable moments on either side.
 */
export function pickWindow(windows: StreamSpan[], t: { target_time?: string; target_lsn?: string }): StreamSpan {
  const inside = (w: StreamSpan) => t.target_time !== undefined
    ? parseMicros(w.start)! <= parseMicros(t.target_time)! && parseMicros(t.target_time)! <= parseMicros(w.end)!
    : w.start_lsn !== null && w.end_lsn !== null && lsnValue(w.start_lsn) <= lsnValue(t.target_lsn!) && lsnValue(t.target_lsn!) <= lsnValue(w.end_lsn);
  const found = windows.filter(inside).sort((a, b) => Number(parseMicros(a.start)! - parseMicros(b.start)!)).at(-1);
  if (found) return found;
  if (windows.length === 0) throw new AppError("pitr_no_timeline", "no recoverable window: continuous archiving has not recorded a base backup for this database", 422);
  if (t.target_lsn !== undefined) throw new AppError("pitr_target_not_recoverable", `LSN ${t.target_lsn} is in no recoverable window (${windows.map((w) => `${w.start_lsn}..${w.end_lsn}`).join(", ")})`, 422);
  const target = parseMicros(t.target_time!)!;
  const before = windows.filter((w) => parseMicros(w.end)! < target).map((w) => w.end).sort().at(-1);
  const after = windows.filter((w) => parseMicros(w.start)! > target).map((w) => w.start).sort()[0];
  const nearest = [before ? `latest recoverable before: ${before}` : "", after ? `earliest recoverable after: ${after}` : ""].filter(Boolean).join("; ");
  const code = after ? "pitr_target_in_gap" : before ? "pitr_target_not_covered_yet" : "pitr_target_before_history";
  throw new AppError(code, `${t.target_time} is not recoverable (${nearest})`, 422);
}

/** What GET /backup/database/status adds per database: the continuous RPO (of the live stream covering the latest moment). */
export async function continuousStatus(env: AppEnv["Bindings"], database: string, now: Date) {
  const live = await openContinuousCatalog(env.CATALOG).freshestLiveStream(database);
  if (!live) return {};
  const rpo = rpoSeconds(live, now);
  return { continuous: { stream_id: live.id, status: live.status, covered_until: live.covered_until, rpo_seconds: rpo === null ? null : Math.round(rpo) } };
}
