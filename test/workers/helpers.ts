// Shared helpers for the Worker's tests (not a test file itself).
//
// Storage (D1, R2) is isolated per test file but shared by the tests inside a
// file, so every file calls resetState() in beforeEach.
//
// Admin API calls go through the Worker's own fetch handler with an env whose
// JOBS producer only records what was sent: the real local Queue would deliver
// those messages to the consumer in the background (which dispatches to
// 127.0.0.1:1 and fails), racing with the assertions. The consumer is tested
// on its own in queue-consumer.test.ts.
import { createExecutionContext, env } from "cloudflare:test";
import { drizzle } from "drizzle-orm/d1";
import worker from "../../workers/index.ts";
import { openCatalog } from "../../workers/catalog/catalog.ts";
import { backups, jobs, type BackupRow, type JobRow } from "../../workers/catalog/schema.ts";
import type { Env } from "../../workers/env.ts";
import type { KindContext } from "../../workers/context.ts";
import { loadConfig } from "../../workers/config.ts";
import { manifestKey, type DatabaseManifest } from "../../workers/shared/format.ts";
import type { JobMessage } from "../../workers/shared/protocol.ts";
import type { DatabaseBackupResult as BackupResult } from "../../workers/database/protocol.ts";

// Tokens from vitest.config.ts: ADMIN_TOKEN holds two (rotation), VIEWER_TOKEN one.
export const ADMIN = "test-admin-token-0123456789";
export const ADMIN_ROTATED = "test-admin-token-rotated-0001";
export const VIEWER = "test-viewer-token-0123456789";
/** The password inside the test DATABASE_URL; must never show up anywhere. */
export const DATABASE_URL_PASSWORD = "s3cret-pw";

export const catalog = () => openCatalog(env.CATALOG);
const db = () => drizzle(env.CATALOG);

/** Messages the admin API put on the (fake) JOBS queue since the last resetState(). */
export const sentMessages: JobMessage[] = [];

export function recordingQueue(sink: JobMessage[] = sentMessages): Queue<JobMessage> {
  return {
    async send(body: JobMessage) {
      sink.push(body);
    },
    async sendBatch(messages: Iterable<MessageSendRequest<JobMessage>>) {
      for (const m of messages) sink.push(m.body);
    },
    async metrics() {
      return { backlogCount: 0, backlogBytes: 0 };
    },
  } as unknown as Queue<JobMessage>;
}

/** The test bindings with a recording JOBS producer, plus any overrides (variables, secrets, bindings). */
export function testEnv(overrides: Record<string, unknown> = {}): Env {
  return { ...env, JOBS: recordingQueue(), ...overrides } as Env;
}

/** What the job kinds' hooks are given, for an env (testEnv() by default). */
export function ctxOf(e: Env = testEnv()): KindContext {
  return { env: e, config: loadConfig(e), catalog: openCatalog(e.CATALOG), now: new Date() };
}

/**
 * Every catalog table emptied and the backup bucket cleared. The Worker tests
 * share one runtime and its storage across files (vitest.config.ts: isolate
 * false, which spares a workerd start per file), so each test starts from
 * this, whatever file ran before it.
 */
export async function resetState(): Promise<void> {
  const tables = await env.CATALOG.prepare(
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\' AND name != 'd1_migrations'",
  ).all<{ name: string }>();
  await env.CATALOG.batch(tables.results.map((t) => env.CATALOG.prepare(`DELETE FROM "${t.name}"`)));
  for (;;) {
    const listed = await env.BACKUPS.list({ limit: 1000 });
    if (listed.objects.length === 0) break;
    await env.BACKUPS.delete(listed.objects.map((o) => o.key));
  }
  sentMessages.length = 0;
}

export interface ApiResponse<T = any> {
  status: number;
  body: T;
  text: string;
  headers: Headers;
}

export interface ApiOptions {
  /** Bearer token; null sends no Authorization header. Defaults to the admin token. */
  token?: string | null;
  /** JSON-encoded as the request body. */
  body?: unknown;
  /** Sent verbatim instead of `body`. */
  rawBody?: string;
  headers?: Record<string, string>;
  /** Overrides on top of testEnv(). */
  env?: Record<string, unknown>;
}

/** Calls the admin API through the Worker's fetch handler. */
export async function api<T = any>(method: string, path: string, opts: ApiOptions = {}): Promise<ApiResponse<T>> {
  const token = opts.token === undefined ? ADMIN : opts.token;
  const headers: Record<string, string> = { ...opts.headers };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (opts.rawBody !== undefined) body = opts.rawBody;
  else if (opts.body !== undefined) body = JSON.stringify(opts.body);
  if (body !== undefined) headers["content-type"] ??= "application/json";
  const request = new Request(`https://backup.test${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
  return asApiResponse<T>(await worker.fetch(request, testEnv(opts.env), createExecutionContext()));
}

/** A response with its body as text and, when it is JSON, parsed. */
async function asApiResponse<T>(res: Response): Promise<ApiResponse<T>> {
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: res.status, body: parsed as T, text, headers: res.headers };
}

/** Calls the runner's repository endpoint (/repo/v1) with a job token, through the Worker's fetch handler. */
export async function repoCall(
  token: string, method: string, path: string, init: { body?: string | Uint8Array; headers?: Record<string, string> } = {}, envOverrides: Record<string, unknown> = {},
): Promise<ApiResponse> {
  const req = new Request(`https://backup.test/repo/v1${path}`, {
    method, headers: { authorization: `Bearer ${token}`, ...init.headers }, ...(init.body !== undefined ? { body: init.body } : {}),
  });
  return asApiResponse(await worker.fetch(req, testEnv(envOverrides), createExecutionContext()));
}

/** Every row of the catalog tables, as text: for "this string appears nowhere" checks. */
export async function catalogDump(): Promise<string> {
  const tables = ["jobs", "backups", "audit_log"];
  const rows = await Promise.all(tables.map((t) => env.CATALOG.prepare(`SELECT * FROM ${t}`).all()));
  return JSON.stringify(rows.map((r) => r.results));
}

export async function jobRow(id: string): Promise<JobRow | undefined> {
  return catalog().getJob(id);
}

export async function allBackupRows(): Promise<BackupRow[]> {
  return db().select().from(backups).all();
}

export async function auditRows() {
  return catalog().listAudit(500);
}

let seq = 0;
const pad = (n: number, width: number) => String(n).padStart(width, "0");

/** A backup id in the repository's format, unique within the run. */
export function backupIdFor(database = "astrid", at = new Date()): string {
  const stamp = at.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
  return `db-${database}-${stamp}-t${pad(++seq % 100000, 5)}`;
}

/** Inserts a catalog backup row (and nothing in R2 unless asked). */
export async function seedBackup(p: Partial<BackupRow> & { created_at: string }): Promise<BackupRow> {
  const source = p.source ?? "astrid";
  const id = p.id ?? backupIdFor(source, new Date(p.created_at));
  const row: BackupRow = {
    id, domain: "database", source, type: "full", status: "completed", manifest_key: manifestKey(id),
    logical_bytes: 1000, stored_bytes: 400, new_stored_bytes: 400, chunk_count: 1, sha256: "a".repeat(64),
    job_id: null, finished_at: p.created_at, duration_ms: 1234, verified_at: null, verify_depth: null,
    verify_status: null, verify_detail: null, last_restore_ms: null,
    ...p,
  };
  await db().insert(backups).values(row).run();
  return row;
}

/** Inserts a job row in any state. */
export async function seedJob(p: Omit<Partial<JobRow>, "params"> & { kind: JobRow["kind"]; params: unknown }): Promise<JobRow> {
  const now = new Date().toISOString();
  const row: JobRow = {
    id: `job-test-${pad(++seq, 6)}`, status: "queued", backup_id: null, requested_by: "test", attempts: 0,
    progress: null, result: null, error_code: null, error_message: null, created_at: now, started_at: null,
    heartbeat_at: null, finished_at: null, step: 0, state: null, concurrency_key: null, queued_reason: null,
    ...p,
    params: typeof p.params === "string" ? p.params : JSON.stringify(p.params),
  };
  await db().insert(jobs).values(row).run();
  return row;
}

/** A queued database.backup job as POST /backup/database would create it. */
export async function seedBackupJob(p: Omit<Partial<JobRow>, "params"> & { database?: string } = {}): Promise<JobRow> {
  const { database = "astrid", ...rest } = p;
  const backup_id = p.backup_id ?? backupIdFor(database);
  return seedJob({ kind: "database.backup", params: { database, type: "full", backup_id }, backup_id, ...rest });
}

export const isoSecondsAgo = (seconds: number, from = Date.now()) => new Date(from - seconds * 1000).toISOString();
export const isoDaysAgo = (days: number, from = Date.now()) => new Date(from - days * 86_400_000).toISOString();

export async function sha256Hex(data: string | Uint8Array): Promise<string> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** A manifest that passes the DatabaseManifest schema, for a backup with `chunks` chunks. */
export function validManifest(backupId: string, opts: { database?: string; chunks?: number; logicalBytes?: number; dumpSha?: string } = {}): DatabaseManifest {
  const chunks = Array.from({ length: opts.chunks ?? 2 }, (_, i) => ({
    id: pad(i + 1, 2).repeat(32),
    plain_size: 1000 + i,
    pack: "e".repeat(64),
    offset: i * 1000,
    stored_size: 500 + i,
    stored_sha256: "c".repeat(63) + String(i % 10),
  }));
  const stored = chunks.reduce((n, c) => n + c.stored_size, 0);
  return {
    format: "astrid-backup/database",
    format_version: 1,
    backup_id: backupId,
    type: "full",
    database: opts.database ?? "astrid",
    created_at: "2026-11-25T02:00:00.000Z",
    finished_at: "2026-11-25T02:00:05.000Z",
    source: { database_name: "astrid", server_version: "17.2", pg_dump_version: "17.2" },
    dump: { format: "custom", pg_dump_args: ["--format=custom"], logical_bytes: opts.logicalBytes ?? 2001, sha256: opts.dumpSha ?? "d".repeat(64) },
    compression: { algorithm: "zstd", level: 3 },
    encryption: { scheme: "age-x25519", recipients: [String(env.BACKUP_ENCRYPTION_KEY)] },
    chunker: { algorithm: "fastcdc-gear32-nc2", min_size: 16384, avg_size: 65536, max_size: 262144 },
    pack_prefix: "packs/",
    chunks,
    stats: { stored_bytes: stored, new_stored_bytes: stored, new_chunks: chunks.length },
  };
}

/** The runner's report for a backup whose manifest is `m`. */
export function backupResultFor(m: DatabaseManifest): BackupResult {
  return {
    kind: "database.backup", backup_id: m.backup_id, manifest_key: manifestKey(m.backup_id),
    logical_bytes: m.dump.logical_bytes, stored_bytes: m.stats.stored_bytes, new_stored_bytes: m.stats.new_stored_bytes,
    chunk_count: m.chunks.length, new_chunk_count: m.stats.new_chunks, sha256: m.dump.sha256,
    started_at: m.created_at, finished_at: m.finished_at, duration_ms: 5000,
  };
}

/** Collects console output while `fn` runs (the Worker runs in this isolate). */
export async function captureLogs<T>(fn: () => Promise<T>): Promise<{ result: T; logs: string }> {
  const lines: string[] = [];
  const methods = ["log", "info", "warn", "error", "debug"] as const;
  const originals = methods.map((m) => console[m]);
  for (const m of methods) console[m] = (...args: unknown[]) => void lines.push(args.map(String).join(" "));
  try {
    const result = await fn();
    return { result, logs: lines.join("\n") };
  } finally {
    methods.forEach((m, i) => (console[m] = originals[i]!));
  }
}
