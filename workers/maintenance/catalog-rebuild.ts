// POST /catalog/rebuild: if D1 is lost or wiped, the backup rows (database,
// ML, training data) and the storage snapshot rows come back from the
// manifests in R2 (the source of truth). A page of manifests per call keeps
// each request within Worker limits; `next_cursor` continues, through the
// three manifest folders in turn. What only the catalog knew (verification
// results, restore timings, jobs, the audit log, the storage version store)
// cannot be rebuilt; rebuilt rows say so by having none.
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../context.ts";
import { requireRole } from "../auth.ts";
import type { Env } from "../env.ts";
import { parseJson } from "../http.ts";
import {
  DatabaseManifest, MANIFEST_PREFIX, ML_MANIFEST_PREFIX, MlManifest, SnapshotManifest, STORAGE_MANIFEST_PREFIX,
} from "../shared/format.ts";
import type { Catalog } from "../catalog/catalog.ts";
import { openStorageCatalog } from "../catalog/storage-catalog.ts";
import { readAuthenticated } from "../repository/manifest-mac.ts";

export const catalogRoutes = new Hono<AppEnv>();

export const RebuildRequest = z.strictObject({
  cursor: z.string().optional(),
  limit: z.number().int().min(1).max(500).default(100),
});

/** One page of a rebuild: ids put back, how many were listed already, manifests refused; next_cursor continues. */
export const RebuildResponse = z.strictObject({
  scanned: z.number().int(),
  restored: z.array(z.string()),
  present: z.number().int(),
  invalid: z.array(z.string()),
  /** Listed from a manifest without a MAC (written before MACs existed). */
  unauthenticated: z.array(z.string()),
  next_cursor: z.string().optional(),
});

/** The id of the row put back, false if it was listed already, undefined if the manifest is unreadable or not authentic. */
type Restore = (env: Env, catalog: Catalog, key: string, unauthenticated: string[]) => Promise<string | false | undefined>;

interface ManifestFolder {
  tag: string;
  prefix: string;
  /** Storage snapshots keep their part files one level down: list only the folder's own objects. */
  delimiter?: string;
  restore: Restore;
}

const FOLDERS: ManifestFolder[] = [
  { tag: "d", prefix: MANIFEST_PREFIX, restore: (env, catalog, key, u) => restoreWith(env, key, DatabaseManifest, (m) => databaseRow(catalog, key, m), u) },
  { tag: "m", prefix: ML_MANIFEST_PREFIX, restore: (env, catalog, key, u) => restoreWith(env, key, MlManifest, (m) => mlRow(catalog, key, m), u) },
  { tag: "s", prefix: STORAGE_MANIFEST_PREFIX, delimiter: "/", restore: (env, _catalog, key) => restoreWith(env, key, SnapshotManifest, (m) => snapshotRow(env, key, m)) },
];

catalogRoutes.post("/catalog/rebuild", requireRole("admin"), async (c) => {
  const body = await parseJson(c, RebuildRequest);
  // Cursor: "<folder tag>:<R2 cursor>"; a bare cursor (older clients) is the database folder's.
  const [tag, r2Cursor] = body.cursor?.match(/^([dms]):(.*)$/s)?.slice(1) ?? ["d", body.cursor ?? ""];
  const at = FOLDERS.findIndex((f) => f.tag === tag);
  const folder = FOLDERS[at]!;
  const page = await c.env.BACKUPS.list({
    prefix: folder.prefix, limit: body.limit, ...(r2Cursor ? { cursor: r2Cursor } : {}), ...(folder.delimiter ? { delimiter: folder.delimiter } : {}),
  });
  // unauthenticated: listed from a manifest without a MAC (written before MACs existed).
  const outcome = { scanned: 0, restored: [] as string[], present: 0, invalid: [] as string[], unauthenticated: [] as string[] };
  for (const object of page.objects) {
    outcome.scanned++;
    const id = await folder.restore(c.env, c.get("catalog"), object.key, outcome.unauthenticated);
    if (id === undefined) outcome.invalid.push(object.key);
    else if (id) outcome.restored.push(id);
    else outcome.present++;
  }
  await c.get("catalog").audit({
    actor: c.get("actor"), action: "catalog.rebuild", outcome: "succeeded",
    detail: { scanned: outcome.scanned, restored: outcome.restored.length, invalid: outcome.invalid, unauthenticated: outcome.unauthenticated },
  });
  const next = page.truncated ? `${folder.tag}:${page.cursor}` : FOLDERS[at + 1] ? `${FOLDERS[at + 1]!.tag}:` : undefined;
  const answer: z.infer<typeof RebuildResponse> = { ...outcome, ...(next ? { next_cursor: next } : {}) };
  return c.json(answer);
});

/**
 * Reads and checks a manifest (its key must name it, and a database or ML
 * manifest its MAC: a planted one is "invalid", never listed), then puts its
 * row back. `unauthenticated` collects the ids listed from MAC-less manifests.
 */
async function restoreWith<T extends { backup_id: string } | { snapshot_id: string }>(
  env: Env, key: string, schema: z.ZodType<T>, insert: (m: T) => Promise<boolean>, unauthenticated?: string[],
): Promise<string | false | undefined> {
  const read = await readAuthenticated(env, key);
  if (!read) return undefined;
  if (unauthenticated && read.auth === "forged") return undefined;
  let manifest: T;
  try {
    const parsed = schema.safeParse(JSON.parse(new TextDecoder().decode(read.bytes)));
    if (!parsed.success) return undefined;
    manifest = parsed.data;
  } catch {
    return undefined;
  }
  const id = "backup_id" in manifest ? manifest.backup_id : manifest.snapshot_id;
  if (!key.endsWith(`/${id}.json`)) return undefined;
  if (unauthenticated && read.auth === "unauthenticated") unauthenticated.push(id);
  return (await insert(manifest)) ? id : false;
}

const durationMs = (m: { created_at: string; finished_at: string }) => Date.parse(m.finished_at) - Date.parse(m.created_at);

function databaseRow(catalog: Catalog, key: string, m: DatabaseManifest): Promise<boolean> {
  return catalog.insertBackupIfAbsent({
    id: m.backup_id, domain: "database", source: m.database, type: m.type, status: "completed", manifest_key: key,
    logical_bytes: m.dump.logical_bytes, stored_bytes: m.stats.stored_bytes, new_stored_bytes: m.stats.new_stored_bytes,
    chunk_count: m.chunks.length, sha256: m.dump.sha256, job_id: null, created_at: m.created_at, finished_at: m.finished_at,
    duration_ms: durationMs(m),
  });
}

function mlRow(catalog: Catalog, key: string, m: MlManifest): Promise<boolean> {
  return catalog.insertBackupIfAbsent({
    id: m.backup_id, domain: m.format === "astrid-backup/mlflow" ? "ml" : "training_data", source: m.source, type: "full", status: "completed",
    manifest_key: key, logical_bytes: m.logical_bytes, stored_bytes: m.stats.stored_bytes, new_stored_bytes: m.stats.new_stored_bytes,
    chunk_count: m.chunks.length, sha256: m.digest, job_id: null, created_at: m.created_at, finished_at: m.finished_at,
    duration_ms: durationMs(m),
  });
}

function snapshotRow(env: Env, key: string, m: SnapshotManifest): Promise<boolean> {
  return openStorageCatalog(env.CATALOG).insertSnapshot({
    id: m.snapshot_id, bucket: m.bucket, prefix: m.prefix, parent_id: m.parent_id ?? null, status: "completed", manifest_key: key,
    ...m.stats, job_id: null, created_at: m.created_at, finished_at: m.finished_at, duration_ms: durationMs(m),
  });
}
