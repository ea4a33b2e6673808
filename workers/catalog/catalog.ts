// Catalog access: the only module that writes SQL against D1 (jobs, backups,
// audit log; storage-catalog.ts has the storage tables). It knows no job kind
// by name: which kinds run alone or in the Worker comes in as arguments.
import { and, desc, eq, inArray, isNotNull, lt, ne, or, sql } from "drizzle-orm";
import { drizzle, type DrizzleD1Database } from "drizzle-orm/d1";
import type { JobError, JobProgress, StoredBackup } from "../shared/protocol.ts";
import { auditLog, backups, jobs, type BackupRow, type JobRow } from "./schema.ts";

export type Catalog = ReturnType<typeof openCatalog>;

export function openCatalog(d1: D1Database) {
  const db = drizzle(d1);
  return {
    createJob: (job: NewJob) => createJob(db, job),
    getJob: (id: string) => db.select().from(jobs).where(eq(jobs.id, id)).get(),
    listJobs: (f: { status?: string; kind?: string; limit: number }) =>
      db.select().from(jobs)
        .where(and(f.status ? eq(jobs.status, f.status as JobRow["status"]) : undefined, f.kind ? eq(jobs.kind, f.kind) : undefined))
        .orderBy(desc(jobs.created_at), desc(jobs.id)).limit(f.limit).all(),
    claimJob: (id: string, now: Date, leaseSeconds: number, rules: ClaimRules, step?: number) => claimJob(db, id, now, leaseSeconds, rules, step),
    /** The oldest unfinished job holding a concurrency key: what a new job of that key will wait behind. */
    activeJobWithKey: (key: string) =>
      db.select().from(jobs).where(and(eq(jobs.concurrency_key, key), or(eq(jobs.status, "running"), eq(jobs.status, "queued"))))
        .orderBy(jobs.created_at).limit(1).get(),
    /** A stepped job's step is done: save its state and put it back in the queue for the next one. */
    advanceJob: (id: string, step: number, state: unknown, progress: JobProgress, now: Date) =>
      db.update(jobs).set({
        status: "queued", step: step + 1, state: JSON.stringify(state), progress: JSON.stringify(progress), heartbeat_at: now.toISOString(),
        error_code: null, error_message: null,
      }).where(and(eq(jobs.id, id), eq(jobs.status, "running"), eq(jobs.step, step))).returning({ id: jobs.id }).get(),
    requeueJob: (id: string, error: JobError) =>
      db.update(jobs).set({ status: "queued", error_code: error.code, error_message: error.message })
        .where(and(eq(jobs.id, id), eq(jobs.status, "running"))).run(),
    recordProgress: (id: string, progress: JobProgress, now: Date) =>
      db.update(jobs).set({ progress: JSON.stringify(progress), heartbeat_at: now.toISOString() })
        .where(and(eq(jobs.id, id), eq(jobs.status, "running"))).returning({ id: jobs.id }).get(),
    succeedJob: (id: string, result: unknown, now: Date) => settleJob(db, id, now, { status: "succeeded", result }),
    failJob: (id: string, error: JobError, now: Date, result?: unknown) => settleJob(db, id, now, { status: "failed", error, result }),
    /** Runner jobs silent for a lease: failed as runner_lost. Worker-run kinds are resumed instead (resumeLostSteps). */
    expireStaleJobs: (now: Date, leaseSeconds: number, workerKinds: string[]) => expireStaleJobs(db, now, leaseSeconds, workerKinds),
    resumeLostSteps: (now: Date, stepLeaseSeconds: number, workerKinds: string[]) => resumeLostSteps(db, now, stepLeaseSeconds, workerKinds),
    recordBackup: (jobId: string, row: BackupIdentity, result: StoredBackup, now: Date) => recordBackup(d1, jobId, row, result, now),
    getBackup: (id: string) => db.select().from(backups).where(eq(backups.id, id)).get(),
    /** The newest good backup of a database; optionally only verified ones, or only ones restored at least once. */
    latestBackup: (database: string, only: { verified?: boolean; restored?: boolean }) =>
      db.select().from(backups)
        .where(and(
          eq(backups.domain, "database"), eq(backups.source, database), eq(backups.status, "completed"),
          only.verified ? eq(backups.verify_status, "passed") : undefined,
          only.restored ? isNotNull(backups.last_restore_ms) : undefined,
        ))
        .orderBy(desc(backups.created_at)).limit(1).get(),
    /** The newest good backup of a database whose chunks live in the shared store (archives have their own). */
    latestSharedBackup: (database: string) =>
      db.select().from(backups)
        .where(and(eq(backups.domain, "database"), eq(backups.source, database), eq(backups.status, "completed"), ne(backups.type, "archive")))
        .orderBy(desc(backups.created_at)).limit(1).get(),
    /** The newest good ML backup of a server (or dataset snapshot): the next one's parent, for deduplication. */
    latestDomainBackup: (domain: BackupRow["domain"], source: string) =>
      db.select().from(backups)
        .where(and(eq(backups.domain, domain), eq(backups.source, source), eq(backups.status, "completed")))
        .orderBy(desc(backups.created_at)).limit(1).get(),
    listBackups: (filter: BackupFilter) => listBackups(db, filter),
    deleteBackup: (id: string) => db.delete(backups).where(eq(backups.id, id)).run(),
    /** True if the row was added, false if a backup with that id was already listed. */
    insertBackupIfAbsent: async (row: typeof backups.$inferInsert) =>
      (await db.insert(backups).values(row).onConflictDoNothing().returning({ id: backups.id }).all()).length > 0,
    recordVerification: (id: string, v: Verification) =>
      db.update(backups).set({
        verified_at: v.at.toISOString(), verify_depth: v.depth, verify_status: v.ok ? "passed" : "failed",
        verify_detail: v.ok ? null : v.problems.slice(0, 20).join("\n"),
        // Damage marks the backup corrupt; only a passing full verify (every chunk decrypted, the dump read) clears it.
        ...(v.ok ? (v.depth === "full" ? { status: "completed" as const } : {}) : { status: "corrupt" as const }),
      }).where(eq(backups.id, id)).run(),
    recordRestore: (id: string, durationMs: number) =>
      db.update(backups).set({ last_restore_ms: durationMs }).where(eq(backups.id, id)).run(),
    audit: (entry: AuditEntry) =>
      db.insert(auditLog).values({
        at: new Date().toISOString(), actor: entry.actor, action: entry.action, target: entry.target ?? null,
        outcome: entry.outcome, detail: entry.detail === undefined ? null : JSON.stringify(entry.detail),
      }).run(),
    /** Whether a job of these kinds is queued or running (a long-running job's cue to give way). */
    jobOfKindsPending: async (kinds: string[]) =>
      kinds.length > 0 && (await db.select({ id: jobs.id }).from(jobs)
        .where(and(inArray(jobs.kind, kinds), or(eq(jobs.status, "queued"), eq(jobs.status, "running")))).limit(1).get()) !== undefined,
    listAudit: (limit: number) => db.select().from(auditLog).orderBy(desc(auditLog.id)).limit(limit).all(),
  };
}

export interface NewJob {
  id: string;
  kind: string;
  params: unknown;
  backup_id?: string;
  concurrency_key?: string;
  requested_by: string;
}

/** What a catalog backup row says about its origin, beside the runner's figures. */
export interface BackupIdentity {
  source: string;
  type: BackupRow["type"];
  domain: BackupRow["domain"];
}

/** What a claim must respect (jobs/consumer.ts builds them from the registry and the config). */
export interface ClaimRules {
  /** Kinds that run alone (garbage collection). */
  exclusiveKinds: string[];
  /** Kinds that run until told to stop: held back while an exclusive job waits or runs (optional: none). */
  longRunningKinds?: string[];
  /** Kinds that occupy the runner, and how many of them may run at once (RUNNER_MAX_JOBS). */
  runnerKinds: string[];
  runnerMaxJobs: number;
}

/** A claim: the job now running, or why it must wait (also written on the row), or nothing (finished, taken, or a stale step). */
export type Claim = { job: JobRow } | { waiting: string } | Record<string, never>;

export interface AuditEntry {
  actor: string;
  action: string;
  target?: string;
  outcome: "accepted" | "denied" | "succeeded" | "failed";
  detail?: unknown;
}

export interface Verification {
  at: Date;
  depth: string;
  ok: boolean;
  problems: string[];
}

export interface BackupFilter {
  domain?: BackupRow["domain"];
  source?: string;
  type?: string;
  status?: string;
  limit: number;
  cursor?: { created_at: string; id: string };
}

type Db = DrizzleD1Database;

async function createJob(db: Db, job: NewJob): Promise<JobRow> {
  return db.insert(jobs).values({
    id: job.id, kind: job.kind, status: "queued", params: JSON.stringify(job.params),
    backup_id: job.backup_id ?? null, concurrency_key: job.concurrency_key ?? null, requested_by: job.requested_by, created_at: new Date().toISOString(),
  }).returning().get();
}

/**
 * Atomically takes a job for dispatch: a queued job, or a running one whose
 * lease has run out. Answers nothing when someone else has it or it is
 * finished, which is what makes a redelivered Queue message harmless.
 *
 * Three rules can make a queued job wait, each checked in the same UPDATE so
 * two claims cannot both slip through:
 * - exclusive kinds (garbage collection) run alone: not claimed while any
 *   other job is active, and no job is claimed while one is, so a chunk or
 *   blob a backup is about to reference (or a restore is reading) is never
 *   collected under it;
 * - jobs sharing a concurrency key (one backup per database) run one at a time;
 * - at most runnerMaxJobs runner jobs run at once.
 */
async function claimJob(db: Db, id: string, now: Date, leaseSeconds: number, rules: ClaimRules, step?: number): Promise<Claim> {
  const cutoff = new Date(now.getTime() - leaseSeconds * 1000).toISOString();
  const blockers = blockingRules(rules, cutoff);
  const job = await db.update(jobs)
    .set({
      status: "running", attempts: sql`${jobs.attempts} + 1`, heartbeat_at: now.toISOString(), queued_reason: null,
      started_at: sql`coalesce(${jobs.started_at}, ${now.toISOString()})`,
    })
    .where(and(
      eq(jobs.id, id), or(eq(jobs.status, "queued"), and(eq(jobs.status, "running"), lt(jobs.heartbeat_at, cutoff))),
      ...blockers.map((b) => sql`NOT (${b.when})`),
      step === undefined ? undefined : eq(jobs.step, step),
    ))
    .returning().get();
  if (job) return { job };
  // Not claimed: if it is still queued (at this step), say which rule holds it.
  const row = await db.select().from(jobs).where(and(eq(jobs.id, id), eq(jobs.status, "queued"), step === undefined ? undefined : eq(jobs.step, step))).get();
  if (!row) return {};
  for (const b of blockers) {
    const held = await db.select({ id: jobs.id }).from(jobs).where(and(eq(jobs.id, id), b.when)).get();
    if (!held) continue;
    await db.update(jobs).set({ queued_reason: b.reason }).where(and(eq(jobs.id, id), eq(jobs.status, "queued"))).run();
    return { waiting: b.reason };
  }
  return {};
}

/** Each rule as a condition on the candidate row (`jobs`) that holds it back, with the reason it gives. */
function blockingRules(rules: ClaimRules, cutoff: string): { when: ReturnType<typeof sql>; reason: string }[] {
  // Active: running and reporting, or a Worker-run job between two of its steps.
  const active = sql`((other.status = 'running' AND other.heartbeat_at >= ${cutoff}) OR (other.status = 'queued' AND other.step > 0))`;
  const list = (kinds: string[]) => (kinds.length ? sql.join(kinds.map((k) => sql`${k}`), sql`, `) : sql`''`);
  return [
    {
      when: sql`EXISTS (SELECT 1 FROM jobs AS other WHERE other.id <> ${jobs.id} AND ${active}
        AND (${jobs.kind} IN (${list(rules.exclusiveKinds)}) OR other.kind IN (${list(rules.exclusiveKinds)})))`,
      reason: "waiting for garbage collection, or for other jobs before garbage collection can run alone",
    },
    {
      // A long-running job (a change stream) gives way to a waiting exclusive one, or that one would never find the runner idle.
      when: sql`${jobs.kind} IN (${list(rules.longRunningKinds ?? [])}) AND EXISTS (SELECT 1 FROM jobs AS other WHERE other.id <> ${jobs.id}
        AND other.kind IN (${list(rules.exclusiveKinds)}) AND (other.status = 'queued' OR ${active}))`,
      reason: "waiting for garbage collection to run first",
    },
    {
      when: sql`${jobs.concurrency_key} IS NOT NULL AND EXISTS (SELECT 1 FROM jobs AS other WHERE other.id <> ${jobs.id}
        AND other.concurrency_key = ${jobs.concurrency_key} AND ${active})`,
      reason: "waiting for the running job on the same source (one at a time per source)",
    },
    {
      when: sql`${jobs.kind} IN (${list(rules.runnerKinds)}) AND (SELECT COUNT(*) FROM jobs AS other WHERE other.id <> ${jobs.id}
        AND other.status = 'running' AND other.heartbeat_at >= ${cutoff} AND other.kind IN (${list(rules.runnerKinds)})) >= ${rules.runnerMaxJobs}`,
      reason: `waiting for room on the runner (RUNNER_MAX_JOBS=${rules.runnerMaxJobs} jobs already running)`,
    },
  ];
}

type Settlement = { status: "succeeded"; result: unknown } | { status: "failed"; error: JobError; result?: unknown };

/** Finishes a job that is not finished yet; returns undefined if it already was. */
async function settleJob(db: Db, id: string, now: Date, s: Settlement): Promise<JobRow | undefined> {
  return db.update(jobs)
    .set({
      status: s.status, finished_at: now.toISOString(),
      result: s.result === undefined ? null : JSON.stringify(s.result),
      error_code: s.status === "failed" ? s.error.code : null,
      error_message: s.status === "failed" ? s.error.message : null,
    })
    .where(and(eq(jobs.id, id), or(eq(jobs.status, "running"), eq(jobs.status, "queued"))))
    .returning().get();
}

/**
 * A Worker-run step whose invocation died (evicted, or hung past a consumer's
 * budget) is put back in the queue to run again from its saved state; a step
 * lost twice in a row fails the job instead of looping.
 */
async function resumeLostSteps(db: Db, now: Date, stepLeaseSeconds: number, workerKinds: string[]): Promise<{ id: string; step: number }[]> {
  if (workerKinds.length === 0) return [];
  const cutoff = new Date(now.getTime() - stepLeaseSeconds * 1000).toISOString();
  const lost = and(eq(jobs.status, "running"), lt(jobs.heartbeat_at, cutoff), inArray(jobs.kind, workerKinds));
  await db.update(jobs).set({
    status: "failed", finished_at: now.toISOString(), error_code: "step_lost",
    error_message: "a step of this job was lost twice in a row (its invocation died or hung); nothing half-done is listed",
  }).where(and(lost, eq(jobs.error_code, "step_lost"))).run();
  return db.update(jobs).set({
    status: "queued", error_code: "step_lost", error_message: "a step was lost (its invocation died or hung); resumed from its saved state",
  }).where(lost).returning({ id: jobs.id, step: jobs.step }).all();
}

async function expireStaleJobs(db: Db, now: Date, leaseSeconds: number, workerKinds: string[]): Promise<number> {
  const cutoff = new Date(now.getTime() - leaseSeconds * 1000).toISOString();
  const expired = await db.update(jobs)
    .set({
      status: "failed", finished_at: now.toISOString(), error_code: "runner_lost",
      error_message: `the runner stopped reporting (no heartbeat for ${leaseSeconds}s); nothing was recorded as a backup`,
    })
    .where(and(eq(jobs.status, "running"), lt(jobs.heartbeat_at, cutoff),
      // Worker-run steps are resumed, not failed (resumeLostSteps).
      workerKinds.length ? sql`${jobs.kind} NOT IN (${sql.join(workerKinds.map((k) => sql`${k}`), sql`, `)})` : undefined))
    .returning({ id: jobs.id }).all();
  return expired.length;
}

/**
 * Job success and backup row in one transaction, in that order: the row goes in
 * only if this job is (now) succeeded, so a late report from a runner whose job
 * was already declared lost lists nothing, and a repeated report adds nothing.
 */
async function recordBackup(d1: D1Database, jobId: string, p: BackupIdentity, r: StoredBackup, now: Date) {
  const [settled] = await d1.batch([
    d1.prepare("UPDATE jobs SET status = 'succeeded', finished_at = ?, result = ?, backup_id = ? WHERE id = ? AND status = 'running'")
      .bind(now.toISOString(), JSON.stringify(r), r.backup_id, jobId),
    d1.prepare(
      `INSERT INTO backups (id, domain, source, type, status, manifest_key, logical_bytes, stored_bytes, new_stored_bytes,
         chunk_count, sha256, job_id, created_at, finished_at, duration_ms)
       SELECT ?, ?, ?, ?, 'completed', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
       WHERE EXISTS (SELECT 1 FROM jobs WHERE id = ? AND status = 'succeeded' AND backup_id = ?)
       ON CONFLICT (id) DO NOTHING`,
    ).bind(
      r.backup_id, p.domain, p.source, p.type, r.manifest_key, r.logical_bytes, r.stored_bytes, r.new_stored_bytes,
      r.chunk_count, r.sha256, jobId, r.started_at, r.finished_at, Math.round(r.duration_ms), jobId, r.backup_id,
    ),
  ]);
  return (settled?.meta.changes ?? 0) > 0;
}

async function listBackups(db: Db, f: BackupFilter): Promise<BackupRow[]> {
  const conditions = [
    f.domain ? eq(backups.domain, f.domain) : undefined,
    f.source ? eq(backups.source, f.source) : undefined,
    f.type ? eq(backups.type, f.type as BackupRow["type"]) : undefined,
    f.status ? eq(backups.status, f.status as BackupRow["status"]) : undefined,
    f.cursor
      ? or(lt(backups.created_at, f.cursor.created_at), and(eq(backups.created_at, f.cursor.created_at), lt(backups.id, f.cursor.id)))
      : undefined,
  ];
  return db.select().from(backups).where(and(...conditions)).orderBy(desc(backups.created_at), desc(backups.id)).limit(f.limit).all();
}
