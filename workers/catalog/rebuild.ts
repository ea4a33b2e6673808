// POST /catalog/rebuild: if D1 is lost or wiped, the backup rows and storage
// snapshot rows come back from the manifests in R2 (the source of truth). A page of manifests per
// call keeps each request within Worker limits; `next_cursor` continues.
// What only the catalog knew (verification results, restore timings, jobs,
// the audit log) cannot be rebuilt; rebuilt rows say so by having none.
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../app-env.ts";
import { requireRole } from "../auth.ts";
import { parseJson } from "../http.ts";
import { DatabaseManifest, MANIFEST_PREFIX, SnapshotManifest, snapshotManifestKey, STORAGE_MANIFEST_PREFIX } from "../shared/format.ts";
import type { Env } from "../env.ts";
import { openStorageCatalog } from "./storage-catalog.ts";
import type { Catalog } from "./catalog.ts";

export const catalogRoutes = new Hono<AppEnv>();

const RebuildRequest = z.strictObject({
  cursor: z.string().optional(),
  limit: z.number().int().min(1).max(500).default(100),
});

catalogRoutes.post("/catalog/rebuild", requireRole("admin"), async (c) => {
  const body = await parseJson(c, RebuildRequest);
  // Database manifests first, then storage snapshot manifests; the cursor says which ("s:" = storage).
  const storage = body.cursor?.startsWith("s:") ?? false;
  const r2Cursor = storage ? body.cursor!.slice(2) || undefined : body.cursor;
  const page = await c.env.BACKUPS.list({
    prefix: storage ? STORAGE_MANIFEST_PREFIX : MANIFEST_PREFIX, limit: body.limit, ...(r2Cursor ? { cursor: r2Cursor } : {}),
    ...(storage ? { delimiter: "/" } : {}), // a snapshot's parts sit one level down
  });
  const outcome = { scanned: 0, restored: [] as string[], present: 0, invalid: [] as string[] };
  for (const object of page.objects) {
    outcome.scanned++;
    const id = storage ? await restoreSnapshotRow(c.env, object.key) : await restoreDatabaseRow(c.env.BACKUPS, c.get("catalog"), object.key);
    if (id === undefined) outcome.invalid.push(object.key);
    else if (id) outcome.restored.push(id);
    else outcome.present++;
  }
  await c.get("catalog").audit({
    actor: c.get("actor"), action: "catalog.rebuild", outcome: "succeeded",
    detail: { scanned: outcome.scanned, restored: outcome.restored.length, invalid: outcome.invalid },
  });
  const next = page.truncated ? (storage ? `s:${page.cursor}` : page.cursor) : storage ? undefined : "s:";
  return c.json({ ...outcome, ...(next ? { next_cursor: next } : {}) });
});

/** The restored backup id, false if it was listed already, undefined if the manifest is unreadable. */
async function restoreDatabaseRow(bucket: R2Bucket, catalog: Catalog, key: string): Promise<string | false | undefined> {
  const manifest = await readManifest(bucket, key);
  if (!manifest) return undefined;
  return (await restoreRow(catalog, key, manifest)) ? manifest.backup_id : false;
}

async function restoreSnapshotRow(env: Env, key: string): Promise<string | false | undefined> {
  const object = await env.BACKUPS.get(key);
  let m: SnapshotManifest;
  try {
    const parsed = SnapshotManifest.safeParse(await object?.json());
    if (!parsed.success || key !== snapshotManifestKey(parsed.data.snapshot_id)) return undefined;
    m = parsed.data;
  } catch {
    return undefined;
  }
  const storage = openStorageCatalog(env.CATALOG);
  if (await storage.getSnapshot(m.snapshot_id)) return false;
  await storage.insertSnapshot({
    id: m.snapshot_id, bucket: m.bucket, prefix: m.prefix, parent_id: m.parent_id ?? null, status: "completed", manifest_key: key,
    ...m.stats, job_id: null, created_at: m.created_at, finished_at: m.finished_at,
    duration_ms: Date.parse(m.finished_at) - Date.parse(m.created_at),
  });
  return m.snapshot_id;
}

async function readManifest(bucket: R2Bucket, key: string): Promise<DatabaseManifest | undefined> {
  const object = await bucket.get(key);
  if (!object) return undefined;
  try {
    const parsed = DatabaseManifest.safeParse(await object.json());
    return parsed.success && key.endsWith(`/${parsed.data.backup_id}.json`) ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

function restoreRow(catalog: Catalog, key: string, m: DatabaseManifest): Promise<boolean> {
  return catalog.insertBackupIfAbsent({
    id: m.backup_id, domain: "database", database: m.database, type: m.type, status: "completed", manifest_key: key,
    logical_bytes: m.dump.logical_bytes, stored_bytes: m.stats.stored_bytes, new_stored_bytes: m.stats.new_stored_bytes,
    chunk_count: m.chunks.length, sha256: m.dump.sha256, job_id: null, created_at: m.created_at, finished_at: m.finished_at,
    duration_ms: Date.parse(m.finished_at) - Date.parse(m.created_at),
  });
}
