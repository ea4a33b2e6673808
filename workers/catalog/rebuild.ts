// POST /catalog/rebuild: if D1 is lost or wiped, the backup rows come back
// from the manifests in R2 (the source of truth). A page of manifests per
// call keeps each request within Worker limits; `next_cursor` continues.
// What only the catalog knew (verification results, restore timings, jobs,
// the audit log) cannot be rebuilt; rebuilt rows say so by having none.
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../app-env.ts";
import { requireRole } from "../auth.ts";
import { parseJson } from "../http.ts";
import { DatabaseManifest, MANIFEST_PREFIX, ML_MANIFEST_PREFIX, MlManifest } from "../shared/format.ts";
import type { Catalog } from "./catalog.ts";

export const catalogRoutes = new Hono<AppEnv>();

const RebuildRequest = z.strictObject({
  cursor: z.string().optional(),
  limit: z.number().int().min(1).max(500).default(100),
});

catalogRoutes.post("/catalog/rebuild", requireRole("admin"), async (c) => {
  const body = await parseJson(c, RebuildRequest);
  // "manifests/" holds both manifests/database/ and manifests/ml/: one cursor pages through all.
  const page = await c.env.BACKUPS.list({ prefix: "manifests/", limit: body.limit, ...(body.cursor ? { cursor: body.cursor } : {}) });
  const outcome = { scanned: 0, restored: [] as string[], present: 0, invalid: [] as string[] };
  for (const object of page.objects) {
    outcome.scanned++;
    if (object.key.startsWith(ML_MANIFEST_PREFIX)) {
      const manifest = await readMlManifest(c.env.BACKUPS, object.key);
      if (!manifest) outcome.invalid.push(object.key);
      else if (await restoreMlRow(c.get("catalog"), object.key, manifest)) outcome.restored.push(manifest.backup_id);
      else outcome.present++;
      continue;
    }
    if (!object.key.startsWith(MANIFEST_PREFIX)) continue;
    const manifest = await readManifest(c.env.BACKUPS, object.key);
    if (!manifest) outcome.invalid.push(object.key);
    else if (await restoreRow(c.get("catalog"), object.key, manifest)) outcome.restored.push(manifest.backup_id);
    else outcome.present++;
  }
  await c.get("catalog").audit({
    actor: c.get("actor"), action: "catalog.rebuild", outcome: "succeeded",
    detail: { scanned: outcome.scanned, restored: outcome.restored.length, invalid: outcome.invalid },
  });
  return c.json({ ...outcome, ...(page.truncated ? { next_cursor: page.cursor } : {}) });
});

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

async function readMlManifest(bucket: R2Bucket, key: string): Promise<MlManifest | undefined> {
  const object = await bucket.get(key);
  if (!object) return undefined;
  try {
    const parsed = MlManifest.safeParse(await object.json());
    return parsed.success && key.endsWith(`/${parsed.data.backup_id}.json`) ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

function restoreMlRow(catalog: Catalog, key: string, m: MlManifest): Promise<boolean> {
  return catalog.insertBackupIfAbsent({
    id: m.backup_id, domain: m.format === "astrid-backup/mlflow" ? "ml" : "training_data", database: m.source, type: "full", status: "completed",
    manifest_key: key, logical_bytes: m.logical_bytes, stored_bytes: m.stats.stored_bytes, new_stored_bytes: m.stats.new_stored_bytes,
    chunk_count: m.chunks.length, sha256: m.digest, job_id: null, created_at: m.created_at, finished_at: m.finished_at,
    duration_ms: Date.parse(m.finished_at) - Date.parse(m.created_at),
  });
}
