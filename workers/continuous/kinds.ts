// The continuous-archiving capability's kinds (docs/continuous.md):
// continuous.stream, a change stream held by the runner until told to stop,
// and continuous.restore, a point-in-time restore; and the watch task that
// every minute (re)starts the stream of each database in DATABASE_CONTINUOUS
// whose job is gone, drops the slot of a database taken out of it, and
// evaluates the slot and RPO alerts.
import { continuousDatabases } from "../config.ts";
import { randomId, unseal } from "../crypto.ts";
import type { KindContext } from "../context.ts";
import { AppError } from "../shared/errors.ts";
import { CONTINUOUS_MANIFEST_PREFIX, manifestKey, newBackupId } from "../shared/format.ts";
import { openContinuousCatalog, rpoSeconds, type ContinuousCatalog } from "../catalog/continuous-catalog.ts";
import type { ContinuousStreamRow } from "../catalog/schema.ts";
import { readerAccess, writerAccess } from "../jobs/dispatch.ts";
import { runnerKind, type CompletionContext, type ScheduledTask } from "../jobs/kind.ts";
import { settle } from "../jobs/complete.ts";
import { submitJob } from "../jobs/submit.ts";
import { completeRestore } from "../database/completion.ts";
import { requireDatabaseUrl } from "../database/kinds.ts";
import { setAlert } from "../dr/alerts.ts";
import {
  ContinuousRestoreParams, ContinuousRestoreResult, ContinuousStreamParams, ContinuousStreamResult, SlotHealth,
  isoMicros, type ContinuousRestoreDispatch, type ContinuousStreamDispatch, type ContinuousStreamResult as StreamResult, type ContinuousStreamParams as StreamParams,
} from "./protocol.ts";

/** One publication per database, named after it: the streams of a database (two while a re-base overlaps them) share it. */
export const publicationName = (database: string) => `astrid_${database}`;

/**
 * A slot per stream: during a re-base the old and the new stream of one
 * database are both alive, each on its own slot. Named after the database and
 * the stream id's random part (at most 62 characters; streams created before
 * re-basing kept the database's name alone, which their rows record).
 */
export const streamSlotName = (database: string, streamId: string) => `astrid_${database.slice(0, 48)}_${streamId.slice(streamId.lastIndexOf("-") + 1)}`;

/** One job at a time per stream (never two consumers on one slot); two streams of a database may run side by side. */
export const streamJobKey = (streamId: string) => `continuous.stream:${streamId}`;

export const continuousStream = runnerKind({
  kind: "continuous.stream", params: ContinuousStreamParams, result: ContinuousStreamResult,
  concurrencyKey: (p) => streamJobKey(p.stream_id),
  longRunning: true,
  async dispatch(p, ctx): Promise<ContinuousStreamDispatch> {
    const store = openContinuousCatalog(ctx.env.CATALOG);
    let stream = await store.getStream(p.stream_id);
    if (p.new_stream) {
      // A dispatch retried after the runner was unreachable finds its own stream; any other is never reused.
      if (stream && (stream.holder_job_id !== ctx.job.id || stream.status !== "starting")) {
        throw new AppError("stream_exists", `stream ${p.stream_id} was already started; a new stream gets a new id`);
      }
      if (!stream) await store.createStream({ id: p.stream_id, database: p.database, slot_name: streamSlotName(p.database, p.stream_id), holder_job_id: ctx.job.id, created_at: ctx.now.toISOString() });
      stream = await store.getStream(p.stream_id);
    } else {
      if (!stream || stream.status !== "active") throw new AppError("stream_not_active", `stream ${p.stream_id} is not active`);
      // From here on only this job's reports are recorded: an earlier holder still running somewhere is fenced off.
      await store.holdStream(stream.id, ctx.job.id);
    }
    const parent = p.new_stream && !p.drop ? await ctx.catalog.latestSharedBackup(p.database) : undefined;
    const all = p.new_stream ? await store.streams(p.database) : [];
    const kept = new Set(all.filter((s) => s.status !== "ended").map((s) => s.slot_name));
    const retired = [...new Set(all.filter((s) => s.status === "ended" && !kept.has(s.slot_name)).map((s) => s.slot_name))];
    const c = ctx.config;
    return {
      kind: "continuous.stream", job_id: ctx.job.id, database: p.database, stream_id: p.stream_id, new_stream: p.new_stream, drop: p.drop,
      source_url: requireDatabaseUrl(ctx, p.database), slot_name: stream!.slot_name, publication_name: publicationName(p.database),
      next_seq: stream!.next_seq, retired_slots: retired, ...(stream!.last_end_lsn ? { resume_after_lsn: stream!.last_end_lsn } : {}),
      ...(stream!.schema ? { schema: JSON.parse(stream!.schema) } : {}),
      segment_seconds: c.continuous_segment_seconds, segment_max_bytes: c.continuous_segment_max_mb * 1024 * 1024,
      heartbeat_seconds: c.continuous_heartbeat_seconds, capture_ddl: c.continuous_capture_ddl,
      ...(await writerAccess(ctx, p.stream_id, parent?.manifest_key)),
    };
  },
  complete: completeStream,
});

/**
 * How a stream's job ended. Yielded or superseded: the stream goes on (the
 * watch task resumes it). Rebased: its successor covers its end; it ends
 * without a gap (its job dropped the slot). A lost slot or a schema change the
 * stream could not capture: the stream ends with a gap, an alert for a lost
 * slot, and a new stream (slot and base) starts at once unless a newer one
 * already runs. A failed job leaves an active stream to the watch task; one
 * that never recorded its base ends.
 */
async function completeStream(c: CompletionContext<StreamParams, StreamResult>): Promise<void> {
  const store = openContinuousCatalog(c.env.CATALOG);
  const stream = await store.getStream(c.params.stream_id);
  const r = c.outcome.status === "succeeded" ? c.outcome.result : undefined;
  if (stream && stream.holder_job_id === c.job.id) {
    if (r && (r.ended === "slot_lost" || r.ended === "schema_changed" || r.ended === "dropped" || r.ended === "rebased")) {
      await store.endStream(stream.id, r.ended, r.detail, c.now);
      const newer = (await store.liveStreams(stream.database)).some((s) => s.created_at > stream.created_at);
      if (r.ended === "slot_lost" && !newer) {
        await setAlert(c, { key: `continuous_slot_lost:${stream.database}`, kind: "continuous_slot_lost", source: stream.database, summary: `replication slot lost: ${r.detail ?? ""}; a new slot and base backup are starting` }, true);
      }
      if ((r.ended === "slot_lost" || r.ended === "schema_changed") && !newer) await startStream(c, stream.database, "policy:continuous", true);
    } else if (!r && stream.status === "starting") {
      await store.endStream(stream.id, "failed", c.outcome.status === "failed" ? c.outcome.error.message : undefined, c.now);
    }
  }
  await settle(c);
}

/**
 * Submits a stream job: resuming a live stream, or a new stream (slot and
 * base). A new stream's row is written at once, so the next watch run sees it
 * (its job holds it) and starts no second one.
 */
export async function startStream(ctx: KindContext, database: string, actor: string, fresh = false, drop = false, resume?: ContinuousStreamRow) {
  const store = openContinuousCatalog(ctx.env.CATALOG);
  const live = fresh ? undefined : resume ?? (await store.liveStreams(database)).at(-1);
  const stream_id = live?.id ?? newBackupId(database, ctx.now, randomId(6));
  const submitted = await submitJob(ctx, continuousStream, { database, stream_id, new_stream: !live, drop }, { backup_id: stream_id, actor, target: database });
  if (!live) {
    await store.createStream({ id: stream_id, database, slot_name: streamSlotName(database, stream_id), holder_job_id: submitted.job.id, created_at: ctx.now.toISOString() });
  }
  return submitted;
}

export const continuousRestore = runnerKind({
  kind: "continuous.restore", params: ContinuousRestoreParams, result: ContinuousRestoreResult,
  async dispatch(p, ctx): Promise<ContinuousRestoreDispatch> {
    const store = openContinuousCatalog(ctx.env.CATALOG);
    const target_url = p.target_database ? requireDatabaseUrl(ctx, p.target_database) : await unseal(ctx.env.JOB_TOKEN_SECRET, p.target_url_sealed ?? "");
    const segments = await store.segments(p.stream_id);
    const target = p.target_time ? isoMicros(p.target_time) : undefined;
    // Every segment that may hold a commit at or before the target; the runner stops at the first commit past it.
    const wanted = segments.filter((s) => target !== undefined
      ? (s.first_commit_at === null || isoMicros(s.first_commit_at) <= target)
      : lsnValue(s.start_lsn) <= lsnValue(p.target_lsn ?? "0/0"));
    return {
      kind: "continuous.restore", job_id: ctx.job.id, stream_id: p.stream_id, base_manifest_key: manifestKey(p.stream_id),
      segment_keys: wanted.map((s) => s.manifest_key), target_url, replace: p.replace,
      ...(p.target_time ? { target_time: p.target_time } : {}), ...(p.target_lsn ? { target_lsn: p.target_lsn } : {}),
      ...(await readerAccess(ctx, p.stream_id)),
    };
  },
  // The RTO is measured on the base backup's row, like any restore of it.
  complete: (c) => completeRestore(c),
});

export function lsnValue(lsn: string): bigint {
  const [hi, lo] = lsn.split("/");
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
}

export const continuousKinds = [continuousStream, continuousRestore];

/**
 * Every minute: streams of DATABASE_CONTINUOUS running (or restarted), a new
 * stream started beside one whose base is older than CONTINUOUS_REBASE_HOURS
 * (re-base: the old one ends once the new one has taken over, see the
 * heartbeat), slots of databases taken out of it dropped, alerts evaluated.
 */
export const continuousWatch: ScheduledTask = {
  name: "continuous archiving watch", cron: (c) => c.continuous_watch_schedule, enabled: () => true, // also when no database is listed: a dropped one's slot must go
  async run(ctx, actor) {
    const store = openContinuousCatalog(ctx.env.CATALOG);
    const wanted = new Set(continuousDatabases(ctx.config));
    const ids: string[] = [];
    for (const database of Object.keys(ctx.config.databases)) {
      let newest: ContinuousStreamRow | undefined;
      for (const live of await store.liveStreams(database)) {
        const running = await ctx.catalog.activeJobWithKey(streamJobKey(live.id));
        if (!wanted.has(database)) {
          // Protection dropped: the slot goes too, or the source would keep WAL for it forever.
          if (!running) ids.push((await startStream(ctx, database, actor, false, true, live)).job.id);
          continue;
        }
        if (!running && live.status === "starting") {
          await store.endStream(live.id, "failed", "the stream's job ended before its base backup was recorded", ctx.now);
          continue;
        }
        if (!running) ids.push((await startStream(ctx, database, actor, false, false, live)).job.id);
        newest = live;
      }
      if (!wanted.has(database)) continue;
      await evaluateAlerts(ctx, store, database, newest);
      await dropExpiredStreams(ctx, store, database);
      if (!newest || rebaseDue(newest, ctx.config.continuous_rebase_hours, ctx.now)) ids.push((await startStream(ctx, database, actor, true)).job.id);
    }
    return ids;
  },
};

/** A live stream whose base is older than the re-base interval (and no newer stream started yet: it would be the newest). */
function rebaseDue(stream: ContinuousStreamRow, hours: number, now: Date): boolean {
  return hours > 0 && stream.status === "active" && stream.consistent_at !== null
    && now.getTime() - Date.parse(stream.consistent_at) >= hours * 3_600_000;
}

/**
 * Retention: an ended stream whose base backup retention removed can restore
 * nothing any more; its segments go (manifests, then rows), and GC reclaims
 * their packs. A live stream keeps its segments.
 */
async function dropExpiredStreams(ctx: KindContext, store: ContinuousCatalog, database: string): Promise<void> {
  for (const s of await store.streams(database)) {
    if (s.status !== "ended" || (await ctx.catalog.getBackup(s.id))) continue;
    try {
      const prefix = `${CONTINUOUS_MANIFEST_PREFIX}${s.id}/`;
      for (;;) {
        const page = await ctx.env.BACKUPS.list({ prefix, limit: 1000 });
        if (page.objects.length === 0) break;
        await ctx.env.BACKUPS.delete(page.objects.map((o) => o.key));
      }
      await store.deleteStream(s.id);
      await ctx.catalog.audit({ actor: "policy:continuous_retention", action: "continuous.stream_removed", target: s.id, outcome: "succeeded" });
    } catch (e) {
      console.error(`continuous retention: stream ${s.id}: ${(e as Error).message}`); // next minute again
    }
  }
}

async function evaluateAlerts(ctx: KindContext, store: ContinuousCatalog, database: string, live: ContinuousStreamRow | undefined): Promise<void> {
  if (!live || live.status !== "active") return;
  const health = live.slot_health ? SlotHealth.safeParse(JSON.parse(live.slot_health)) : undefined;
  const slot = health?.success ? health.data : undefined;
  const limit = ctx.config.continuous_slot_alert_mb * 1024 * 1024;
  const atRisk = slot !== undefined && (slot.wal_status === "unreserved" || slot.wal_status === "lost" || (slot.safe_wal_size !== null && slot.safe_wal_size < limit));
  await setAlert(ctx, {
    key: `continuous_slot:${database}`, kind: "continuous_slot", source: database,
    summary: `replication slot ${live.slot_name}: wal_status ${slot?.wal_status ?? "?"}, safe_wal_size ${slot?.safe_wal_size ?? "unlimited"} bytes, ${slot?.retained_bytes ?? "?"} bytes retained; set max_slot_wal_keep_size and check the stream`,
  }, atRisk);
  const rpo = rpoSeconds(live, ctx.now);
  await setAlert(ctx, {
    key: `continuous_rpo:${database}`, kind: "continuous_rpo", source: database,
    summary: `newest durable point is ${rpo === null ? "unknown" : `${Math.round(rpo)} s`} old (limit ${ctx.config.continuous_rpo_alert_seconds} s)`,
  }, rpo !== null && rpo > ctx.config.continuous_rpo_alert_seconds);
  if (slot?.wal_status !== "lost") await setAlert(ctx, { key: `continuous_slot_lost:${database}`, kind: "continuous_slot_lost", source: database, summary: "slot healthy again" }, false);
}


export const continuousTasks = [continuousWatch];
