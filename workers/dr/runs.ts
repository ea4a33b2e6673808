// D1 access of disaster recovery, the one DR module that writes SQL: drill
// and scenario runs (dr_runs), alert state (dr_alerts), and the reads of the
// catalog's jobs, backups and snapshots that RTO, metrics and the catalog
// check need.
import { and, desc, eq, inArray, lt, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { backups, drAlerts, drRuns, jobs, storageSnapshots, type DrAlertRow, type DrRunRow } from "../catalog/schema.ts";
import type { DomainResult } from "./protocol.ts";
import { runbookLink } from "./scenarios.ts";

export type DrStore = ReturnType<typeof openDrStore>;

export interface RunOutcome {
  status: "passed" | "failed";
  finished_at: string;
  results: DomainResult[];
  data_loss_seconds: number | null;
  errors: string[];
}

export function openDrStore(d1: D1Database) {
  const db = drizzle(d1);
  return {
    startRun: (row: { id: string; kind: string; trigger: DrRunRow["trigger"]; requested_by: string; started_at: string }) =>
      db.insert(drRuns).values({ ...row, status: "running" }).onConflictDoNothing().run(),
    /** Settles a run once: a late or repeated report changes nothing. */
    finishRun: (id: string, o: RunOutcome) =>
      db.update(drRuns).set({
        status: o.status, finished_at: o.finished_at, results: JSON.stringify(o.results), data_loss_seconds: o.data_loss_seconds,
        errors: JSON.stringify(o.errors),
        duration_ms: sql`CAST((julianday(${o.finished_at}) - julianday(${drRuns.started_at})) * 86400000 AS INTEGER)`,
      }).where(and(eq(drRuns.id, id), eq(drRuns.status, "running"))).returning().get(),
    getRun: (id: string) => db.select().from(drRuns).where(eq(drRuns.id, id)).get(),
    listRuns: (f: { kind?: string; limit: number; before?: string }) =>
      db.select().from(drRuns)
        .where(and(f.kind ? eq(drRuns.kind, f.kind) : undefined, f.before ? lt(drRuns.started_at, f.before) : undefined))
        .orderBy(desc(drRuns.started_at), desc(drRuns.id)).limit(f.limit).all(),
    /** Runs still "running" whose job has ended without a report (runner lost, dispatch gave up). */
    orphanedRuns: () =>
      db.select({ run: drRuns, error_code: jobs.error_code, error_message: jobs.error_message, finished_at: jobs.finished_at })
        .from(drRuns).innerJoin(jobs, eq(jobs.id, drRuns.id))
        .where(and(eq(drRuns.status, "running"), eq(jobs.status, "failed"))).all(),
    /** The newest finished run of a kind, optionally only passed ones. */
    latestRun: (kind: string, passed?: boolean) =>
      db.select().from(drRuns)
        .where(and(eq(drRuns.kind, kind), passed ? eq(drRuns.status, "passed") : sql`${drRuns.status} <> 'running'`))
        .orderBy(desc(drRuns.started_at)).limit(1).get(),
    /** Recent successful restore jobs (database and ML): RTO samples besides drills. */
    recentRestores: (limit: number) =>
      db.select().from(jobs).where(and(inArray(jobs.kind, ["database.restore", "ml.restore"]), eq(jobs.status, "succeeded")))
        .orderBy(desc(jobs.finished_at)).limit(limit).all(),
    failedJobsByKind: () =>
      db.select({ kind: jobs.kind, n: sql<number>`count(*)` }).from(jobs).where(eq(jobs.status, "failed")).groupBy(jobs.kind).all(),
    /** The newest completed backup of each domain, source and type. */
    newestBackups: () =>
      db.select().from(backups).where(sql`${backups.status} = 'completed' AND ${backups.created_at} = (SELECT max(n.created_at) FROM backups n
        WHERE n.domain = ${backups.domain} AND n.source = ${backups.source} AND n.type = ${backups.type} AND n.status = 'completed')`).all(),
    /** The newest snapshot of each bucket and prefix. */
    newestSnapshots: () =>
      db.select().from(storageSnapshots).where(sql`${storageSnapshots.created_at} = (SELECT max(n.created_at) FROM storage_snapshots n
        WHERE n.bucket = ${storageSnapshots.bucket} AND n.prefix = ${storageSnapshots.prefix})`).all(),
    allBackups: () => db.select().from(backups).all(),
    allSnapshots: () => db.select().from(storageSnapshots).all(),
    getAlert: (key: string) => db.select().from(drAlerts).where(eq(drAlerts.key, key)).get(),
    listAlerts: (status?: DrAlertRow["status"]) =>
      db.select().from(drAlerts).where(status ? eq(drAlerts.status, status) : undefined).orderBy(desc(drAlerts.updated_at)).all(),
    /**
     * firing: true if this call moved the alert into firing (it was absent or
     * resolved), so only one caller notifies even when two evaluate at once.
     */
    fire: async (a: { key: string; kind: string; source: string; summary: string }, at: string) => {
      const row = await db.insert(drAlerts).values({ ...a, status: "firing", fired_at: at, updated_at: at })
        .onConflictDoUpdate({
          target: drAlerts.key,
          set: { status: "firing", summary: a.summary, fired_at: at, resolved_at: null, updated_at: at },
          setWhere: eq(drAlerts.status, "resolved"),
        }).returning({ key: drAlerts.key }).get();
      return Boolean(row);
    },
    /** true if this call moved a firing alert to resolved. */
    resolve: async (key: string, at: string) =>
      Boolean(await db.update(drAlerts).set({ status: "resolved", resolved_at: at, updated_at: at })
        .where(and(eq(drAlerts.key, key), eq(drAlerts.status, "firing"))).returning({ key: drAlerts.key }).get()),
  };
}

export function runView(r: DrRunRow) {
  const json = (t: string | null) => (t ? JSON.parse(t) : undefined);
  const scenario = r.kind.startsWith("scenario:") ? r.kind.slice("scenario:".length) : undefined;
  const results = (json(r.results) ?? []) as DomainResult[];
  return {
    ...(scenario ? { scenario, runbook: runbookLink(scenario), steps: results.flatMap(stepsOf) } : {}),
    run_id: r.id, job_id: r.id, kind: r.kind, trigger: r.trigger, status: r.status, requested_by: r.requested_by,
    started_at: r.started_at, ...(r.finished_at ? { finished_at: r.finished_at, duration_ms: r.duration_ms } : {}),
    ...(r.results ? { results: json(r.results) } : {}),
    data_loss_seconds: r.data_loss_seconds,
    errors: json(r.errors) ?? [],
  };
}

/** A scenario's steps with their timings: restore and validate per domain, then any steps the scenario added. */
function stepsOf(d: DomainResult) {
  const extra = (Array.isArray(d.details?.steps) ? d.details.steps : []) as { name: string; ms: number; ok: boolean }[];
  return [
    { name: `restore ${d.domain} ${d.source}${d.restore_point ? ` from ${d.restore_point}` : ""}`, ms: d.restore_ms, ok: d.restore_ms > 0 },
    { name: `validate ${d.domain} ${d.source}`, ms: d.validate_ms, ok: d.passed },
    ...extra,
  ];
}
