// What a running stream reports, under /repo/v1/continuous with its job
// token: its base backup (listed like any backup once its manifest checks
// out), each durable segment (recorded in order, and only from the job that
// holds the stream: the runner confirms the segment's LSN to the source only
// after this answer), and a heartbeat with the slot's health, whose answer
// tells it to stop when an exclusive job waits or another job holds the stream.
import { Hono, type Context } from "hono";
import { AppError } from "../shared/errors.ts";
import { CONTINUOUS_MANIFEST_PREFIX, DatabaseManifest, manifestKey, SegmentManifest, segmentManifestKey } from "../shared/format.ts";
import type { JobGrant } from "../repository/job-token.ts";
import { parseJson } from "../http.ts";
import type { RepoEnv } from "../repository/routes.ts";
import { openContinuousCatalog } from "../catalog/continuous-catalog.ts";
import type { KindRegistry } from "../jobs/kind.ts";
import { kindContext } from "../http.ts";
import { manifestProblem, verifyAfterBackup } from "../database/completion.ts";
import { databaseVerify } from "../database/kinds.ts";
import { BaseReport, ContinuousStreamParams, HeartbeatReport, SegmentReport, type HeartbeatAnswer } from "./protocol.ts";

/** The stream job behind the token, and the stream it names (its base backup id, which the token is scoped to). */
function streamJob(c: Context<RepoEnv>, streamId: string) {
  const grant = c.get("grant");
  const job = c.get("job");
  if (job.kind !== "continuous.stream" || grant.scope !== "write") throw new AppError("forbidden", `job ${grant.job_id} is not a change stream`, 403);
  const params = ContinuousStreamParams.parse(JSON.parse(job.params));
  if (params.stream_id !== streamId || grant.backup_id !== streamId) throw new AppError("forbidden", `job ${grant.job_id} does not hold stream ${streamId}`, 403);
  return { job, params };
}

const notHeld = (id: string) => new AppError("stream_not_held", `stream ${id} is not held by this job (another job took it over, or it ended)`, 409);

export function continuousRunnerRoutes(kinds: KindRegistry) {
  const routes = new Hono<RepoEnv>();

  routes.post("/continuous/base", async (c) => {
    const report = await parseJson(c, BaseReport);
    const { job, params } = streamJob(c, report.stream_id);
    const ctx = kindContext(c);
    const b = report.backup;
    const problem = await manifestProblem(ctx, job, b, {
      key: manifestKey(report.stream_id), schema: DatabaseManifest,
      agrees: (m) => m.dump.sha256 === b.sha256 && m.chunks.length === b.chunk_count && m.dump.logical_bytes === b.logical_bytes,
    });
    if (problem) throw new AppError("manifest_mismatch", problem, 409);
    const store = openContinuousCatalog(c.env.CATALOG);
    const stream = await store.recordBase(report.stream_id, job.id, {
      consistent_lsn: report.consistent_lsn, consistent_at: report.consistent_at, schema: JSON.stringify(report.schema),
      uncovered: JSON.stringify(report.uncovered), ddl_captured: report.ddl_captured,
    }, ctx.now);
    if (!stream) throw notHeld(report.stream_id);
    const listed = await ctx.catalog.insertBackupIfAbsent({
      id: b.backup_id, domain: "database", source: params.database, type: "full", status: "completed", manifest_key: b.manifest_key,
      logical_bytes: b.logical_bytes, stored_bytes: b.stored_bytes, new_stored_bytes: b.new_stored_bytes, chunk_count: b.chunk_count,
      sha256: b.sha256, job_id: job.id, created_at: b.started_at, finished_at: b.finished_at, duration_ms: Math.round(b.duration_ms),
    });
    if (listed) await verifyAfterBackup(ctx, b.backup_id, databaseVerify);
    await ctx.catalog.audit({
      actor: "runner", action: "continuous.base", target: report.stream_id, outcome: "succeeded",
      detail: { job_id: job.id, consistent_lsn: report.consistent_lsn, uncovered: report.uncovered.map((u) => u.table), ddl_captured: report.ddl_captured },
    });
    return c.json({ recorded: true });
  });

  routes.post("/continuous/segment", async (c) => {
    const report = await parseJson(c, SegmentReport);
    const { job } = streamJob(c, report.stream_id);
    const ctx = kindContext(c);
    const store = openContinuousCatalog(c.env.CATALOG);
    // Refused first (recordSegment checks it again, atomically): a zombie learns it lost the stream, not that its manifest is missing.
    const held = await store.getStream(report.stream_id);
    if (!held || held.status !== "active" || held.holder_job_id !== job.id) throw notHeld(report.stream_id);
    const key = segmentManifestKey(report.stream_id, report.seq, job.id);
    if (report.manifest_key !== key) throw new AppError("invalid_request", `segment ${report.seq} belongs at ${key}`, 400);
    const problem = await manifestProblem(ctx, { ...job, backup_id: report.stream_id }, { backup_id: report.stream_id, manifest_key: key }, {
      key, schema: SegmentManifest,
      agrees: (m) => m.backup_id === report.stream_id && m.seq === report.seq && m.end_lsn === report.end_lsn && m.start_lsn === report.start_lsn
        && m.transactions === report.transactions && m.payload.sha256 === report.sha256 && m.payload.logical_bytes === report.logical_bytes
        && m.chunks.reduce((n, ch) => n + ch.plain_size, 0) === m.payload.logical_bytes,
    });
    if (problem) throw new AppError("manifest_mismatch", problem, 409);
    const outcome = await store.recordSegment(job.id, {
      stream_id: report.stream_id, seq: report.seq, manifest_key: key, start_lsn: report.start_lsn, end_lsn: report.end_lsn,
      first_commit_at: report.first_commit_at, last_commit_at: report.last_commit_at, transactions: report.transactions,
      logical_bytes: report.logical_bytes, stored_bytes: report.stored_bytes, covered_until: report.covered_until,
      confirm_lsn: report.confirm_lsn, schema: JSON.stringify(report.schema),
    }, ctx.now);
    if (outcome === "refused") throw notHeld(report.stream_id);
    return c.json({ recorded: true });
  });

  routes.post("/continuous/heartbeat", async (c) => {
    const report = await parseJson(c, HeartbeatReport);
    const { job } = streamJob(c, report.stream_id);
    const store = openContinuousCatalog(c.env.CATALOG);
    const held = await store.heartbeat(report.stream_id, job.id, {
      ...(report.covered_until ? { covered_until: report.covered_until } : {}), slot_health: JSON.stringify(report.slot),
    }, new Date());
    // A re-base's successor has taken over: this stream's end is covered by it, so it ends (and drops its slot) without a gap.
    const answer: HeartbeatAnswer = !held ? { stop: "superseded" }
      : (await store.successor(held)) ? { stop: "rebased" }
      : (await c.get("catalog").jobOfKindsPending(kinds.exclusiveKinds())) ? { stop: "yield" } : {};
    return c.json(answer);
  });
  return routes;
}

/**
 * The repository's write fence for segment manifests: only the job holding
 * an active stream may write one (under its own job id). A zombie runner,
 * whose job was taken over but whose token still passes (it kept sending
 * heartbeats), is refused before R2 is touched: its manifest would otherwise
 * stay in the bucket, keeping its packs referenced and showing a bucket
 * listing a segment the timeline never recorded.
 */
export async function segmentWriteFence(env: RepoEnv["Bindings"], grant: JobGrant, key: string): Promise<void> {
  if (!key.startsWith(CONTINUOUS_MANIFEST_PREFIX)) return;
  const [streamId, file] = key.slice(CONTINUOUS_MANIFEST_PREFIX.length).split("/");
  const writer = /^\d{8}-(.+)\.json$/.exec(file ?? "")?.[1];
  if (writer !== grant.job_id) throw new AppError("forbidden", `job ${grant.job_id} may write segment manifests under its own job id only`, 403);
  const stream = await openContinuousCatalog(env.CATALOG).getStream(streamId ?? "");
  if (!stream || stream.status !== "active" || stream.holder_job_id !== grant.job_id) throw notHeld(streamId ?? "");
}
