// POST /backup/database/cleanup: age-based retention. Removes the catalog row
// and the manifest; never the newest completed backup of a database; dry_run
// only reports.
import { env } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import type { BackupRow } from "../../workers/catalog/schema.ts";
import { allBackupRows, api, auditRows, isoDaysAgo, resetState, seedBackup } from "./helpers.ts";

beforeEach(resetState);

const CHUNK_KEY = `packs/ab/${"ab".repeat(32)}`;

/** A backup row plus its manifest object in R2. */
async function backupAged(days: number, p: Partial<BackupRow> = {}): Promise<BackupRow> {
  const row = await seedBackup({ created_at: isoDaysAgo(days), ...p });
  await env.BACKUPS.put(row.manifest_key, JSON.stringify({ backup_id: row.id }));
  return row;
}

const cleanup = (body: unknown, envOverrides?: Record<string, unknown>) =>
  api("POST", "/backup/database/cleanup", { body, ...(envOverrides ? { env: envOverrides } : {}) });
const remainingIds = async () => (await allBackupRows()).map((b) => b.id).sort();
const manifestExists = async (b: BackupRow) => (await env.BACKUPS.head(b.manifest_key)) !== null;

describe("POST /backup/database/cleanup", () => {
  it("removes backups older than retention_days: catalog row and manifest, leaving chunks", async () => {
    await env.BACKUPS.put(CHUNK_KEY, "chunk bytes");
    const old1 = await backupAged(40);
    const old2 = await backupAged(35, { type: "incremental" });
    const recent = await backupAged(3);
    const res = await cleanup({ retention_days: 30 });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ retention_days: 30, dry_run: false, removed: 2, backup_ids: expect.arrayContaining([old1.id, old2.id]) });
    expect(await remainingIds()).toEqual([recent.id]);
    expect(await manifestExists(old1)).toBe(false);
    expect(await manifestExists(old2)).toBe(false);
    expect(await manifestExists(recent)).toBe(true);
    expect(await env.BACKUPS.head(CHUNK_KEY)).not.toBeNull();
  });

  it("never removes the newest completed backup of a database, however old", async () => {
    const oldest = await backupAged(400);
    const newestOfAstrid = await backupAged(200);
    const res = await cleanup({ retention_days: 30 });
    expect(res.body.backup_ids).toEqual([oldest.id]);
    expect(await remainingIds()).toEqual([newestOfAstrid.id]);
    expect(await manifestExists(newestOfAstrid)).toBe(true);
  });

  it("keeps the newest completed backup of each database separately", async () => {
    const astridOld = await backupAged(100, { source: "astrid" });
    const astridKeep = await backupAged(90, { source: "astrid" });
    const skyOld = await backupAged(80, { source: "sky" });
    const skyKeep = await backupAged(70, { source: "sky" });
    const res = await cleanup({ retention_days: 30 });
    expect([...res.body.backup_ids].sort()).toEqual([astridOld.id, skyOld.id].sort());
    expect(await remainingIds()).toEqual([astridKeep.id, skyKeep.id].sort());
  });

  it("does not count a corrupt backup as the one to keep", async () => {
    const completed = await backupAged(100);
    const corruptNewer = await backupAged(60, { status: "corrupt" });
    const res = await cleanup({ retention_days: 30 });
    expect(res.body.backup_ids).toEqual([corruptNewer.id]);
    expect(await remainingIds()).toEqual([completed.id]);
  });

  it("removes every old backup once a recent completed backup exists", async () => {
    const a = await backupAged(50);
    const b = await backupAged(40);
    const fresh = await backupAged(1);
    const res = await cleanup({ retention_days: 30 });
    expect([...res.body.backup_ids].sort()).toEqual([a.id, b.id].sort());
    expect(await remainingIds()).toEqual([fresh.id]);
  });

  it("with dry_run reports what it would remove and removes nothing", async () => {
    const old = await backupAged(40);
    const keep = await backupAged(35);
    const before = await remainingIds();
    const res = await cleanup({ retention_days: 30, dry_run: true });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ retention_days: 30, dry_run: true, removed: 1, backup_ids: [old.id] });
    expect(await remainingIds()).toEqual(before);
    expect(await manifestExists(old)).toBe(true);
    expect(await manifestExists(keep)).toBe(true);
  });

  it("uses database_retention_days from the config when retention_days is omitted", async () => {
    const old = await backupAged(31);
    await backupAged(29);
    const res = await cleanup({});
    expect(res.body).toMatchObject({ retention_days: 30, removed: 1, backup_ids: [old.id] });
  });

  it("honours DATABASE_RETENTION_DAYS when retention_days is omitted", async () => {
    const old = await backupAged(8);
    const keep = await backupAged(6);
    const res = await cleanup({}, { DATABASE_RETENTION_DAYS: "7" });
    expect(res.body).toMatchObject({ retention_days: 7, removed: 1, backup_ids: [old.id] });
    expect(await remainingIds()).toEqual([keep.id]);
  });

  it("removes nothing when nothing is old enough", async () => {
    await backupAged(1);
    await backupAged(2);
    const res = await cleanup({ retention_days: 30 });
    expect(res.body).toMatchObject({ retention_days: 30, dry_run: false, removed: 0, backup_ids: [] });
    expect(await remainingIds()).toHaveLength(2);
  });

  it("handles more backups than one catalog page (500)", async () => {
    const rows = Array.from({ length: 520 }, (_, i) => ({ id: `db-astrid-20250101T000000Z-p${String(i).padStart(5, "0")}`, i }));
    const created = (i: number) => new Date(Date.UTC(2025, 0, 1) + i * 60_000).toISOString();
    const stmts = rows.map(({ id, i }) =>
      env.CATALOG.prepare(
        `INSERT INTO backups (id, domain, source, type, status, manifest_key, logical_bytes, stored_bytes, new_stored_bytes,
          chunk_count, sha256, created_at, finished_at, duration_ms) VALUES (?, 'database', 'astrid', 'full', 'completed', ?, 1, 1, 1, 1, ?, ?, ?, 1)`,
      ).bind(id, `manifests/database/${id}.json`, "a".repeat(64), created(i), created(i)));
    await env.CATALOG.batch(stmts);
    const res = await cleanup({ retention_days: 30, dry_run: true });
    expect(res.body.removed).toBe(519);
    expect(res.body.backup_ids).not.toContain(rows[519]!.id);
  });

  it("audits the cleanup with the removed ids", async () => {
    const old = await backupAged(40);
    await backupAged(35);
    await cleanup({ retention_days: 30 });
    const [entry] = await auditRows();
    expect(entry).toMatchObject({ action: "database.cleanup", outcome: "succeeded", target: "all databases: older than 30 days" });
    expect(JSON.parse(entry!.detail!)).toMatchObject({ dry_run: false, removed: [old.id] });
  });

  const invalid: [string, unknown][] = [
    ["retention_days 0", { retention_days: 0 }],
    ["a negative retention_days", { retention_days: -5 }],
    ["a fractional retention_days", { retention_days: 1.5 }],
    ["retention_days as a string", { retention_days: "30" }],
    ["a non-boolean dry_run", { retention_days: 30, dry_run: "yes" }],
    ["an unknown field", { retention_days: 30, everything: true }],
  ];
  for (const [what, body] of invalid) {
    it(`answers 400 for ${what} and removes nothing`, async () => {
      await backupAged(400);
      await backupAged(300);
      const res = await cleanup(body);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("invalid_request");
      expect(await remainingIds()).toHaveLength(2);
    });
  }
});
