// Catalog access for continuous archiving: change streams, their segments and
// the gaps between streams. Like catalog.ts it knows no job kind by name; the
// fencing rule (only the holder job's reports count) is in the SQL, so a late
// report from a runner that lost the stream changes nothing.
import { and, asc, desc, eq, gt, inArray, isNull, lte, ne, or, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { continuousGaps, continuousSegments, continuousStreams, type ContinuousStreamRow } from "./schema.ts";

export type ContinuousCatalog = ReturnType<typeof openContinuousCatalog>;

export interface SegmentRecord {
  stream_id: string;
  seq: number;
  manifest_key: string;
  start_lsn: string;
  end_lsn: string;
  first_commit_at: string | null;
  last_commit_at: string | null;
  transactions: number;
  logical_bytes: number;
  stored_bytes: number;
  covered_until: string;
  confirm_lsn: string;
  schema: string;
}

/**
 * Of a database's live streams (two overlap while one is re-based), the one
 * that covers the latest moment: the continuous RPO is its age. The first
 * when none has recorded its base yet.
 */
export function freshestStream(live: ContinuousStreamRow[]): ContinuousStreamRow | undefined {
  return live.filter((s) => s.covered_until).sort((a, b) => Date.parse(a.covered_until!) - Date.parse(b.covered_until!)).at(-1) ?? live[0];
}

/** The continuous RPO: age of the newest moment every commit before which is durable. */
export function rpoSeconds(stream: Pick<ContinuousStreamRow, "covered_until">, now: Date): number | null {
  return stream.covered_until ? Math.max(0, (now.getTime() - Date.parse(stream.covered_until)) / 1000) : null;
}

export function openContinuousCatalog(d1: D1Database) {
  const db = drizzle(d1);
  return {
    getStream: (id: string) => db.select().from(continuousStreams).where(eq(continuousStreams.id, id)).get(),
    /**
     * The database's streams that are starting or active, oldest first: one,
     * or two while a re-base overlaps the old stream with its successor.
     */
    liveStreams: (database: string) =>
      db.select().from(continuousStreams)
        .where(and(eq(continuousStreams.database, database), inArray(continuousStreams.status, ["starting", "active"])))
        .orderBy(asc(continuousStreams.created_at)).all(),
    /**
     * The stream that has taken over from `stream` (a re-base): a newer active
     * stream of the database that has proven itself (a segment recorded, or
     * covered time past its base: an idle source writes no segment) and whose
     * base is not later than the last moment `stream` covers, so the two
     * windows overlap and ending `stream` leaves no gap.
     */
    successor: (stream: ContinuousStreamRow) =>
      stream.covered_until === null ? undefined : db.select().from(continuousStreams).where(and(
        eq(continuousStreams.database, stream.database), eq(continuousStreams.status, "active"), gt(continuousStreams.created_at, stream.created_at),
        lte(continuousStreams.consistent_at, stream.covered_until),
        or(gt(continuousStreams.next_seq, 0), gt(continuousStreams.covered_until, continuousStreams.consistent_at)),
      )).orderBy(desc(continuousStreams.created_at)).limit(1).get(),
    /** The database's live stream that covers the latest moment (see freshestStream), if any. */
    freshestLiveStream: async (database: string): Promise<ContinuousStreamRow | undefined> =>
      freshestStream(await db.select().from(continuousStreams)
        .where(and(eq(continuousStreams.database, database), inArray(continuousStreams.status, ["starting", "active"])))
        .orderBy(asc(continuousStreams.created_at)).all()),
    /** A database's streams, oldest first. */
    streams: (database: string) =>
      db.select().from(continuousStreams).where(eq(continuousStreams.database, database)).orderBy(asc(continuousStreams.created_at)).all(),
    createStream: (row: { id: string; database: string; slot_name: string; holder_job_id: string; created_at: string }) =>
      db.insert(continuousStreams).values({ ...row, status: "starting" }).onConflictDoNothing().run(),
    /** The job now holding the stream: reports of any earlier holder are refused from here on. */
    holdStream: (id: string, jobId: string) =>
      db.update(continuousStreams).set({ holder_job_id: jobId }).where(and(eq(continuousStreams.id, id), inArray(continuousStreams.status, ["starting", "active"]))).run(),
    /** The base is recorded: the stream becomes active, and an open gap of the database closes at its snapshot. */
    recordBase: async (id: string, jobId: string, b: { consistent_lsn: string; consistent_at: string; schema: string; uncovered: string; ddl_captured: boolean }, now: Date) => {
      const row = await db.update(continuousStreams).set({
        status: "active", consistent_lsn: b.consistent_lsn, consistent_at: b.consistent_at, covered_until: b.consistent_at,
        confirmed_lsn: b.consistent_lsn, schema: b.schema, uncovered: b.uncovered, ddl_captured: b.ddl_captured, heartbeat_at: now.toISOString(),
      }).where(and(eq(continuousStreams.id, id), eq(continuousStreams.holder_job_id, jobId), eq(continuousStreams.status, "starting")))
        .returning().get();
      if (row) {
        await db.update(continuousGaps).set({ until_time: b.consistent_at })
          .where(and(eq(continuousGaps.database, row.database), isNull(continuousGaps.until_time))).run();
      }
      return row;
    },
    /**
     * A durable segment, in order: recorded only for the holder job of an
     * active stream and only as its next segment (a repeat of the last one is
     * answered as recorded, so a retried report is harmless).
     */
    recordSegment: async (jobId: string, s: SegmentRecord, now: Date): Promise<"recorded" | "repeat" | "refused"> => {
      const existing = await db.select().from(continuousSegments)
        .where(and(eq(continuousSegments.stream_id, s.stream_id), eq(continuousSegments.seq, s.seq))).get();
      if (existing) return existing.manifest_key === s.manifest_key && existing.end_lsn === s.end_lsn ? "repeat" : "refused";
      const [advanced] = await d1.batch([
        d1.prepare(`UPDATE continuous_streams SET next_seq = ?, confirmed_lsn = ?, last_end_lsn = ?, schema = ?,
            covered_until = CASE WHEN covered_until IS NULL OR covered_until < ? THEN ? ELSE covered_until END, heartbeat_at = ?
          WHERE id = ? AND holder_job_id = ? AND status = 'active' AND next_seq = ?`)
          .bind(s.seq + 1, s.confirm_lsn, s.end_lsn, s.schema, s.covered_until, s.covered_until, now.toISOString(), s.stream_id, jobId, s.seq),
        d1.prepare(`INSERT INTO continuous_segments (stream_id, seq, manifest_key, start_lsn, end_lsn, first_commit_at, last_commit_at,
            transactions, logical_bytes, stored_bytes, created_at)
          SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM continuous_streams WHERE id = ? AND holder_job_id = ? AND next_seq = ?)
          ON CONFLICT DO NOTHING`)
          .bind(s.stream_id, s.seq, s.manifest_key, s.start_lsn, s.end_lsn, s.first_commit_at, s.last_commit_at, s.transactions,
            s.logical_bytes, s.stored_bytes, now.toISOString(), s.stream_id, jobId, s.seq + 1),
      ]);
      return (advanced?.meta.changes ?? 0) > 0 ? "recorded" : "refused";
    },
    /** A heartbeat of the holder: covered time and slot health. Undefined when the job no longer holds the stream. */
    heartbeat: (id: string, jobId: string, h: { covered_until?: string; slot_health: string }, now: Date) =>
      db.update(continuousStreams).set({
        slot_health: h.slot_health, heartbeat_at: now.toISOString(),
        ...(h.covered_until ? { covered_until: sql`CASE WHEN ${continuousStreams.covered_until} IS NULL OR ${continuousStreams.covered_until} < ${h.covered_until} THEN ${h.covered_until} ELSE ${continuousStreams.covered_until} END` } : {}),
      }).where(and(eq(continuousStreams.id, id), eq(continuousStreams.holder_job_id, jobId), eq(continuousStreams.status, "active"))).returning().get(),
    /**
     * The stream ends. Unless another active stream of the database already
     * covers from the last moment this one covered (a re-base's successor), a
     * gap opens there: closed at once by such a stream's later base, or by the
     * next stream's base when it is recorded.
     */
    endStream: async (id: string, cause: string, detail: string | undefined, now: Date): Promise<ContinuousStreamRow | undefined> => {
      const row = await db.update(continuousStreams).set({ status: "ended", ended_at: now.toISOString(), end_cause: cause, end_detail: detail ?? null })
        .where(and(eq(continuousStreams.id, id), inArray(continuousStreams.status, ["starting", "active"]))).returning().get();
      if (row && row.status === "ended" && row.consistent_at) {
        const next = await db.select().from(continuousStreams)
          .where(and(eq(continuousStreams.database, row.database), eq(continuousStreams.status, "active"), ne(continuousStreams.id, row.id)))
          .orderBy(asc(continuousStreams.consistent_at)).limit(1).get();
        const covered = next?.consistent_at && row.covered_until && next.consistent_at <= row.covered_until;
        if (!covered) {
          await db.insert(continuousGaps).values({
            database: row.database, after_stream_id: row.id, from_time: row.covered_until, until_time: next?.consistent_at ?? null, cause, detail: detail ?? null,
            detected_at: now.toISOString(),
          }).run();
        }
      }
      return row;
    },
    /** Ids of streams still starting or active: their base backups are what their windows restore from. */
    liveStreamIds: async () =>
      (await db.select({ id: continuousStreams.id }).from(continuousStreams).where(inArray(continuousStreams.status, ["starting", "active"])).all()).map((r) => r.id),
    segments: (streamId: string) =>
      db.select().from(continuousSegments).where(eq(continuousSegments.stream_id, streamId)).orderBy(asc(continuousSegments.seq)).all(),
    gaps: (database: string) =>
      db.select().from(continuousGaps).where(eq(continuousGaps.database, database)).orderBy(asc(continuousGaps.detected_at)).all(),
    /** Retention: a stream whose base is gone goes with its segments (their manifests are deleted by the caller). */
    deleteStream: async (id: string) => {
      await db.delete(continuousSegments).where(eq(continuousSegments.stream_id, id)).run();
      await db.delete(continuousStreams).where(eq(continuousStreams.id, id)).run();
    },
  };
}
