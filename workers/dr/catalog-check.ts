// The catalog part of a drill: if D1 were lost, would a rebuild from the
// manifests in R2 give back the same catalog? Every manifest is read and
// checked with the same schemas the rebuild uses (catalog/rebuild.ts), and
// the rows it would produce (id, domain, source, type, created_at, digest)
// are compared with the live catalog: every backup listed, none extra, none
// different. The rebuilt set is held in memory (a scratch set), never written.
import type { z } from "zod";
import type { Env } from "../env.ts";
import {
  DatabaseManifest, MANIFEST_PREFIX, ML_MANIFEST_PREFIX, MlManifest, SnapshotManifest, STORAGE_MANIFEST_PREFIX,
} from "../shared/format.ts";
import type { DomainResult } from "./protocol.ts";
import { openDrStore } from "./runs.ts";

type Row = { id: string; what: string };

const FOLDERS: { prefix: string; delimiter?: string; row: (json: unknown) => Row | undefined }[] = [
  { prefix: MANIFEST_PREFIX, row: (j) => parsed(DatabaseManifest, j, (m) => ({ id: m.backup_id, what: `database ${m.database} ${m.type} ${m.created_at} ${m.dump.sha256}` })) },
  { prefix: ML_MANIFEST_PREFIX, row: (j) => parsed(MlManifest, j, (m) => ({ id: m.backup_id, what: `${m.format === "astrid-backup/mlflow" ? "ml" : "training_data"} ${m.source} full ${m.created_at} ${m.digest}` })) },
  { prefix: STORAGE_MANIFEST_PREFIX, delimiter: "/", row: (j) => parsed(SnapshotManifest, j, (m) => ({ id: m.snapshot_id, what: `storage ${m.bucket}/${m.prefix} ${m.created_at}` })) },
];

function parsed<T>(schema: z.ZodType<T>, json: unknown, row: (m: T) => Row): Row | undefined {
  const r = schema.safeParse(json);
  return r.success ? row(r.data) : undefined;
}

export async function drillCatalog(env: Env): Promise<DomainResult> {
  const started = Date.now();
  const result: DomainResult = { domain: "catalog", source: "d1", passed: false, restore_ms: 0, validate_ms: 0, bytes: 0, problems: [] };
  const rebuilt = new Map<string, string>();
  for (const folder of FOLDERS) {
    let cursor: string | undefined;
    do {
      const page = await env.BACKUPS.list({ prefix: folder.prefix, limit: 1000, ...(cursor ? { cursor } : {}), ...(folder.delimiter ? { delimiter: folder.delimiter } : {}) });
      for (const o of page.objects) {
        const body = await env.BACKUPS.get(o.key);
        result.bytes += o.size;
        let row: Row | undefined;
        try {
          row = body ? folder.row(await body.json()) : undefined;
        } catch {
          row = undefined;
        }
        if (!row || !o.key.endsWith(`/${row.id}.json`)) result.problems.push(`manifest ${o.key}: unreadable, a rebuild would skip it`);
        else rebuilt.set(row.id, row.what);
      }
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor);
  }
  result.restore_ms = Date.now() - started;
  const t = Date.now();
  const store = openDrStore(env.CATALOG);
  const live = new Map<string, string>();
  for (const b of await store.allBackups()) live.set(b.id, `${b.domain} ${b.source} ${b.type} ${b.created_at} ${b.sha256}`);
  for (const s of await store.allSnapshots()) live.set(s.id, `storage ${s.bucket}/${s.prefix} ${s.created_at}`);
  for (const [id, what] of rebuilt) {
    if (!live.has(id)) result.problems.push(`${id}: in R2 but not in the live catalog`);
    else if (live.get(id) !== what) result.problems.push(`${id}: the rebuilt row differs from the live one`);
  }
  for (const id of live.keys()) if (!rebuilt.has(id)) result.problems.push(`${id}: listed in the catalog but its manifest is not in R2`);
  result.details = { manifests: rebuilt.size, live_rows: live.size };
  result.validate_ms = Date.now() - t;
  result.passed = result.problems.length === 0;
  return result;
}
