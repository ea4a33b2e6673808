// Age-based retention (ASTR-112's cleanup_old_backups). Removes the manifest
// and the catalog row; chunks no manifest references are left for garbage
// collection. The newest completed backup of each database always survives.
import type { Catalog } from "../catalog/catalog.ts";
import type { Env } from "../env.ts";
import type { BackupRow } from "../catalog/schema.ts";

export interface CleanupOutcome {
  dry_run: boolean;
  removed: number;
  backup_ids: string[];
}

export async function cleanupOldBackups(env: Env, catalog: Catalog, days: number, dryRun: boolean, now: Date): Promise<CleanupOutcome> {
  const cutoff = new Date(now.getTime() - days * 86_400_000).toISOString();
  const all = await allBackups(catalog);
  const newest = new Map<string, string>();
  for (const b of all) {
    if (b.status === "completed" && !newest.has(b.database)) newest.set(b.database, b.id); // rows come newest first
  }
  const doomed = all.filter((b) => b.created_at < cutoff && newest.get(b.database) !== b.id);
  if (!dryRun) {
    for (const b of doomed) {
      await env.BACKUPS.delete(b.manifest_key);
      await catalog.deleteBackup(b.id);
    }
  }
  return { dry_run: dryRun, removed: doomed.length, backup_ids: doomed.map((b) => b.id) };
}

async function allBackups(catalog: Catalog): Promise<BackupRow[]> {
  const rows: BackupRow[] = [];
  let cursor: { created_at: string; id: string } | undefined;
  for (;;) {
    const page = await catalog.listBackups({ limit: 500, ...(cursor ? { cursor } : {}) });
    rows.push(...page);
    const last = page[page.length - 1];
    if (page.length < 500 || !last) return rows;
    cursor = { created_at: last.created_at, id: last.id };
  }
}
