// The admin API described as OpenAPI 3.1, built from the very zod schemas the
// routes parse their requests with (the route modules export them), so a
// changed schema changes the document. The table below names each route's
// method, path, role and schemas; test/workers/openapi.test.ts checks it
// against the routes Hono has registered, in both directions, so a route
// cannot be added or removed without the document following.
import { AuditQuery, AuditResponse, JobListQuery, JobListResponse } from "../jobs/routes.ts";
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../context.ts";
import { requireRole } from "../auth.ts";
import * as database from "../database/routes.ts";
import { DatabaseStatusResponse } from "../database/status.ts";
import * as dr from "../dr/routes.ts";
import * as continuous from "../continuous/routes.ts";
import { ScenarioRequest } from "../dr/scenarios.ts";
import * as gc from "../maintenance/gc-routes.ts";
import * as rebuild from "../maintenance/catalog-rebuild.ts";
import * as ml from "../ml/routes.ts";
import * as storage from "../storage/routes.ts";
import * as ops from "../storage/ops-routes.ts";
import { AcceptedResponse, BackupAccepted, JobView } from "../http.ts";
import * as consoleViews from "../console/routes.ts";

type Role = "viewer" | "admin" | "public";

interface Operation {
  method: "get" | "post" | "put" | "delete";
  /** The path as Hono spells it (":id", ":key{.+}"). */
  path: string;
  role: Role;
  summary: string;
  query?: z.ZodType;
  body?: z.ZodType | "binary";
  /** The success status and what it carries: a JSON body always has its schema (the route builds its answer with that schema's type). */
  ok: { status: number; schema: z.ZodType } | { status: number; content: "text" | "binary" };
}

const accepted = { status: 202, schema: AcceptedResponse } as const;
const backupAccepted = { status: 202, schema: BackupAccepted } as const;
const json = (schema: z.ZodType, status = 200) => ({ status, schema });

/** GET /health's healthy answer (app.ts builds it with this type). */
export const HealthResponse = z.strictObject({ status: z.literal("ok") });

/** This document, as far as a client relies on it. */
const OpenApiDocumentShape = z.looseObject({ openapi: z.literal("3.1.0"), info: z.looseObject({ title: z.string() }), paths: z.record(z.string(), z.unknown()) });

/** Every route of the admin API (the runner's /repo/v1 side is not admin API and is left out). */
export const OPERATIONS: Operation[] = [
  { method: "get", path: "/health", role: "public", summary: "Liveness: the configuration loads and the catalog answers", ok: json(HealthResponse) },
  { method: "get", path: "/openapi.json", role: "viewer", summary: "This document", ok: json(OpenApiDocumentShape) },
  { method: "get", path: "/backup/database/status", role: "viewer", summary: "Per database: newest and newest verified restore point, RPO and restore time", ok: json(DatabaseStatusResponse) },
  { method: "get", path: "/backup/database/timeline", role: "viewer", summary: "Continuous archiving: a database's recoverable windows and gaps", query: continuous.TimelineQuery, ok: json(continuous.TimelineResponse) },
  { method: "post", path: "/backups/restore-pitr", role: "admin", summary: "Restore a database to a point in time (job)", body: continuous.PitrRequest, ok: json(continuous.PitrAccepted, 202) },
  { method: "post", path: "/backup/database", role: "admin", summary: "Back up a database (job)", body: database.BackupRequest, ok: backupAccepted },
  { method: "get", path: "/backup/database", role: "viewer", summary: "List database backups, newest first", query: database.ListQuery, ok: json(database.BackupPage) },
  { method: "post", path: "/backup/database/cleanup", role: "admin", summary: "Apply database retention", body: database.CleanupRequest, ok: json(database.CleanupResponse) },
  { method: "get", path: "/backups/:id", role: "viewer", summary: "One backup of any domain", ok: json(database.BackupDetail) },
  {
    method: "post", path: "/backups/:id/restore", role: "admin", summary: "Restore a backup of any domain; the body is the domain's (job)",
    body: z.union([database.RestoreRequest, ml.RestoreRequest, ml.TrainingDataRestoreRequest]), ok: accepted,
  },
  { method: "post", path: "/backups/:id/verify", role: "admin", summary: "Verify a backup (job)", body: database.VerifyRequest, ok: accepted },
  { method: "post", path: "/backup/ml", role: "admin", summary: "Back up an MLflow server (job)", body: ml.BackupRequest, ok: backupAccepted },
  { method: "get", path: "/backup/ml", role: "viewer", summary: "List ML backups or training-data snapshots", query: ml.ListQuery, ok: json(ml.MlBackupPage) },
  { method: "post", path: "/backup/ml/:id/restore", role: "admin", summary: "Restore an ML backup (alias of /backups/:id/restore)", body: ml.RestoreRequest, ok: accepted },
  { method: "post", path: "/backup/training-data", role: "admin", summary: "Snapshot a training-data set (job)", body: ml.TrainingDataRequest, ok: backupAccepted },
  {
    method: "post", path: "/backup/training-data/:id/restore", role: "admin", summary: "Restore a training-data snapshot (alias of /backups/:id/restore)",
    body: ml.TrainingDataRestoreRequest, ok: accepted,
  },
  { method: "get", path: "/backup/ml/:id", role: "viewer", summary: "One ML backup", ok: json(ml.MlBackupDetail) },
  { method: "get", path: "/jobs", role: "viewer", summary: "List jobs", query: JobListQuery, ok: json(JobListResponse) },
  { method: "get", path: "/jobs/:id", role: "viewer", summary: "One job: status, progress, result or error", ok: json(JobView) },
  { method: "get", path: "/audit", role: "admin", summary: "The audit log, newest first", query: AuditQuery, ok: json(AuditResponse) },
  { method: "post", path: "/repository/gc", role: "admin", summary: "Garbage-collect unreferenced chunks (job)", body: gc.GcRequest, ok: accepted },
  { method: "post", path: "/catalog/rebuild", role: "admin", summary: "Rebuild catalog rows from the manifests in R2, one page", body: rebuild.RebuildRequest, ok: json(rebuild.RebuildResponse) },
  { method: "post", path: "/backup/storage", role: "admin", summary: "Snapshot R2 buckets (jobs)", body: storage.SnapshotRequest, ok: json(storage.SnapshotAccepted, 202) },
  { method: "post", path: "/backup/storage/cleanup", role: "admin", summary: "Apply storage retention", body: storage.CleanupRequest, ok: json(storage.StorageCleanupResponse) },
  { method: "post", path: "/storage/gc", role: "admin", summary: "Garbage-collect storage snapshot data (job)", body: storage.GcRequest, ok: accepted },
  { method: "post", path: "/storage/offsite/sync", role: "admin", summary: "Copy the backup bucket off-site (job)", body: storage.OffsiteSyncRequest, ok: accepted },
  { method: "get", path: "/backup/storage", role: "viewer", summary: "List storage snapshots", query: storage.ListQuery, ok: json(storage.SnapshotList) },
  { method: "get", path: "/backup/storage/status", role: "viewer", summary: "Per storage source: newest snapshot and its age", ok: json(storage.StorageStatusResponse) },
  { method: "get", path: "/backup/storage/:id", role: "viewer", summary: "One storage snapshot", ok: json(storage.SnapshotView) },
  { method: "post", path: "/backup/storage/:id/restore", role: "admin", summary: "Restore a storage snapshot (job)", body: storage.SnapshotRestoreRequest, ok: accepted },
  { method: "post", path: "/storage/restore", role: "admin", summary: "Restore a bucket as of a point in time (job)", body: storage.PointInTimeRequest, ok: accepted },
  { method: "post", path: "/storage/versioning", role: "admin", summary: "Start capturing a bucket's versions", body: storage.BucketRequest, ok: json(storage.VersioningResponse) },
  { method: "post", path: "/storage/replication", role: "admin", summary: "Start replicating a bucket", body: storage.ReplicationRequest, ok: json(storage.ReplicationStarted) },
  { method: "delete", path: "/storage/replication/:source", role: "admin", summary: "Stop replicating a bucket", ok: json(storage.ReplicationStopped) },
  { method: "get", path: "/storage/replication", role: "viewer", summary: "Replication status per bucket", ok: json(storage.ReplicationStatusResponse) },
  { method: "post", path: "/storage/reconcile", role: "admin", summary: "Reconcile a bucket's version log with its objects (job)", body: storage.BucketRequest, ok: accepted },
  { method: "get", path: "/storage/versions", role: "viewer", summary: "The captured versions of one object", query: storage.VersionsQuery, ok: json(storage.VersionsResponse) },
  { method: "put", path: "/storage/objects/:bucket/:key{.+}", role: "admin", summary: "Write an object through, recording its version", body: "binary", ok: json(storage.ObjectWritten, 201) },
  { method: "get", path: "/storage/objects/:bucket/:key{.+}", role: "admin", summary: "Read an object back", ok: { status: 200, content: "binary" } },
  { method: "put", path: "/storage/lifecycle", role: "admin", summary: "Set a bucket's lifecycle rules", body: ops.LifecycleRequest, ok: json(ops.LifecycleApplied) },
  { method: "get", path: "/storage/lifecycle", role: "viewer", summary: "A bucket's lifecycle rules, stored and in R2", query: ops.BucketQuery, ok: json(ops.LifecycleView) },
  { method: "get", path: "/storage/cost", role: "viewer", summary: "A bucket's storage cost report", query: ops.CostQuery, ok: json(ops.CostResponse) },
  { method: "post", path: "/storage/offsite", role: "admin", summary: "Copy one page of the backup bucket off-site", body: ops.OffsiteRequest, ok: json(ops.OffsitePageResponse) },
  { method: "put", path: "/storage/locks", role: "admin", summary: "Set a bucket's Bucket Lock rules", body: ops.LocksRequest, ok: json(ops.LocksApplied) },
  { method: "get", path: "/storage/locks", role: "viewer", summary: "A bucket's Bucket Lock rules", query: ops.LocksQuery, ok: json(ops.LocksView) },
  { method: "post", path: "/backup/test-recovery", role: "admin", summary: "Start a DR drill (job)", body: dr.DrillRequest, ok: json(dr.DrillAccepted, 202) },
  { method: "get", path: "/dr/scenarios", role: "viewer", summary: "The DR scenario catalogue", ok: json(dr.ScenarioCatalogue) },
  { method: "post", path: "/dr/scenarios/:name/simulate", role: "admin", summary: "Simulate a DR scenario as a drill (job)", body: ScenarioRequest, ok: json(dr.ScenarioAccepted, 202) },
  { method: "get", path: "/dr/runs", role: "viewer", summary: "List drill runs", query: dr.RunsQuery, ok: json(dr.RunList) },
  { method: "get", path: "/dr/runs/:id", role: "viewer", summary: "One drill run", ok: json(dr.RunView) },
  { method: "get", path: "/dr/status", role: "viewer", summary: "RPO/RTO status against their targets", ok: json(dr.DrStatusResponse) },
  { method: "get", path: "/dr/rto", role: "viewer", summary: "Measured restore times per source", ok: json(dr.RtoResponse) },
  { method: "get", path: "/dr/alerts", role: "viewer", summary: "DR alerts", query: dr.AlertsQuery, ok: json(dr.AlertList) },
  { method: "get", path: "/metrics", role: "viewer", summary: "Prometheus metrics", ok: { status: 200, content: "text" } },
  { method: "get", path: "/overview", role: "viewer", summary: "The console's overview: one row per protected source, failing first", ok: json(consoleViews.OverviewResponse) },
  { method: "get", path: "/stats/backups", role: "viewer", summary: "One source's backup sizes, durations, restores, RPO and replication lag over time", query: consoleViews.StatsQuery, ok: json(consoleViews.StatsResponse) },
];

/** The shared error shape of every 4xx and 5xx answer. */
export const ErrorBody = z.strictObject({ error: z.strictObject({ code: z.string().min(1), message: z.string() }) });

/** Hono's ":id" and ":key{.+}" as OpenAPI's "{id}" and "{key}". */
export const openApiPath = (path: string) => path.replace(/:([A-Za-z_]+)(\{[^}]*\})?/g, "{$1}");

// Requests are inputs: fields with defaults are optional; refinements and
// transforms (not expressible in JSON Schema) leave the base type.
const jsonSchema = (schema: z.ZodType, io: "input" | "output" = "input") => {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: "any" }) as Record<string, unknown>;
  return rest;
};

function parameters(op: Operation) {
  const path = [...op.path.matchAll(/:([A-Za-z_]+)/g)].map(([, name]) => ({ name, in: "path", required: true, schema: { type: "string", minLength: 1 } }));
  if (!op.query) return path;
  const q = jsonSchema(op.query) as { properties?: Record<string, object>; required?: string[] };
  const query = Object.entries(q.properties ?? {}).map(([name, schema]) => ({ name, in: "query", required: q.required?.includes(name) ?? false, schema }));
  return [...path, ...query];
}

function responses(op: Operation) {
  const error = { description: "{error:{code,message}}", content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } };
  const media = "schema" in op.ok
    ? { "application/json": { schema: jsonSchema(op.ok.schema, "output") } }
    : {
      text: { "text/plain": { schema: { type: "string" } } },
      binary: { "application/octet-stream": { schema: { type: "string", format: "binary" } } },
    }[op.ok.content];
  const extra = op.path === "/health"
    ? { 503: { description: "unhealthy", content: { "application/json": { schema: { type: "object", required: ["status", "error"], properties: { status: { const: "unhealthy" }, error: { $ref: "#/components/schemas/Error/properties/error" } } } } } } }
    : {};
  return { [op.ok.status]: { description: "success", content: media }, ...extra, "4XX": error, "5XX": error };
}

function requestBody(op: Operation) {
  if (!op.body) return {};
  if (op.body === "binary") {
    return { requestBody: { required: true, content: { "application/octet-stream": { schema: { type: "string", format: "binary" } } } } };
  }
  // An empty body is read as {}: required only when {} is not a valid request.
  return { requestBody: { required: !op.body.safeParse({}).success, content: { "application/json": { schema: jsonSchema(op.body) } } } };
}

export function openApiDocument() {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of OPERATIONS) {
    (paths[openApiPath(op.path)] ??= {})[op.method] = {
      summary: op.summary,
      operationId: `${op.method}${openApiPath(op.path).replace(/[{}]/g, "").replace(/[^A-Za-z0-9]+(.)?/g, (_, ch: string | undefined) => (ch ?? "").toUpperCase())}`,
      "x-role": op.role,
      ...(op.role === "public" ? { security: [] } : {}),
      parameters: parameters(op),
      ...requestBody(op),
      responses: responses(op),
    };
  }
  return {
    openapi: "3.1.0",
    info: { title: "astrid-backup admin API", version: "1", description: "Viewer routes take the viewer or admin token; admin routes the admin token (x-role)." },
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
      schemas: { Error: jsonSchema(ErrorBody) },
    },
    security: [{ bearer: [] }],
    paths,
  };
}

export const openApiRoutes = new Hono<AppEnv>();

openApiRoutes.get("/openapi.json", requireRole("viewer"), (c) => c.json(openApiDocument()));
