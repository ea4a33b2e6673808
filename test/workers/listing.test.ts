// GET /backup/database: newest first, filters, cursor pagination; GET /backups/:id.
import { beforeEach, describe, expect, it } from "vitest";
import type { BackupRow } from "../../workers/catalog/schema.ts";
import { api, resetState, seedBackup, VIEWER } from "./helpers.ts";

beforeEach(resetState);

const list = (query = "") => api("GET", `/backup/database${query}`, { token: VIEWER });
const ids = (res: { body: any }) => res.body.backups.map((b: any) => b.backup_id) as string[];

/** Follows next_cursor until the last page; returns the pages' ids. */
async function allPages(query: string): Promise<string[][]> {
  const pages: string[][] = [];
  let cursor: string | undefined;
  do {
    const res = await list(`?${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    expect(res.status).toBe(200);
    pages.push(ids(res));
    cursor = res.body.next_cursor;
    if (pages.length > 50) throw new Error("pagination does not end");
  } while (cursor);
  return pages;
}

describe("GET /backup/database", () => {
  it("answers an empty list without next_cursor when there are no backups", async () => {
    const res = await list();
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ backups: [] });
  });

  it("lists backups newest first with the contract's fields", async () => {
    const older = await seedBackup({ created_at: "2026-11-01T02:00:00.000Z", logical_bytes: 5000, stored_bytes: 1200 });
    const newer = await seedBackup({ created_at: "2026-11-02T02:00:00.000Z", type: "incremental" });
    const res = await list();
    expect(ids(res)).toEqual([newer.id, older.id]);
    expect(res.body.next_cursor).toBeUndefined();
    expect(res.body.backups[1]).toMatchObject({
      backup_id: older.id, database: "astrid", type: "full", status: "completed",
      logical_bytes: 5000, stored_bytes: 1200, created_at: "2026-11-01T02:00:00.000Z",
    });
    expect(res.body.backups[1]).not.toHaveProperty("verified_at");
  });

  it("shows verified_at once a backup was verified", async () => {
    const b = await seedBackup({
      created_at: "2026-11-01T02:00:00.000Z", verified_at: "2026-11-01T03:00:00.000Z", verify_depth: "full", verify_status: "passed",
    });
    const [row] = (await list()).body.backups;
    expect(row).toMatchObject({ backup_id: b.id, verified_at: "2026-11-01T03:00:00.000Z", verify_status: "passed" });
  });

  it("filters by database, type and status, alone and combined", async () => {
    const a1 = await seedBackup({ created_at: "2026-11-01T00:00:00.000Z", source: "astrid", type: "full" });
    const a2 = await seedBackup({ created_at: "2026-11-02T00:00:00.000Z", source: "astrid", type: "incremental" });
    const a3 = await seedBackup({ created_at: "2026-11-03T00:00:00.000Z", source: "astrid", type: "full", status: "corrupt" });
    const s1 = await seedBackup({ created_at: "2026-11-04T00:00:00.000Z", source: "sky", type: "archive" });
    expect(ids(await list("?database=astrid"))).toEqual([a3.id, a2.id, a1.id]);
    expect(ids(await list("?database=sky"))).toEqual([s1.id]);
    expect(ids(await list("?type=full"))).toEqual([a3.id, a1.id]);
    expect(ids(await list("?status=corrupt"))).toEqual([a3.id]);
    expect(ids(await list("?database=astrid&type=full&status=completed"))).toEqual([a1.id]);
    expect(ids(await list("?database=nobody"))).toEqual([]);
  });

  it("pages through every backup exactly once, newest first", async () => {
    const seeded: BackupRow[] = [];
    for (let i = 0; i < 7; i++) seeded.push(await seedBackup({ created_at: `2026-11-0${i + 1}T02:00:00.000Z` }));
    const pages = await allPages("limit=3");
    expect(pages.map((p) => p.length)).toEqual([3, 3, 1]);
    expect(pages.flat()).toEqual(seeded.map((b) => b.id).reverse());
  });

  it("ends without next_cursor when the last page is exactly full", async () => {
    for (let i = 0; i < 4; i++) await seedBackup({ created_at: `2026-11-0${i + 1}T02:00:00.000Z` });
    const pages = await allPages("limit=2");
    expect(pages.map((p) => p.length)).toEqual([2, 2]);
  });

  it("neither skips nor repeats backups that share a created_at", async () => {
    const at = "2026-11-05T02:00:00.000Z";
    const same = ["db-astrid-20261105T020000Z-aaaaa1", "db-astrid-20261105T020000Z-aaaaa2", "db-astrid-20261105T020000Z-aaaaa3", "db-astrid-20261105T020000Z-aaaaa4"];
    for (const id of same) await seedBackup({ id, created_at: at });
    const older = await seedBackup({ created_at: "2026-11-04T02:00:00.000Z" });
    const pages = await allPages("limit=2");
    expect(pages.flat()).toEqual([...[...same].reverse(), older.id]);
  });

  it("keeps filters applied across pages", async () => {
    const astrid: string[] = [];
    for (let i = 0; i < 5; i++) {
      const b = await seedBackup({ created_at: `2026-11-0${i + 1}T02:00:00.000Z`, source: i % 2 ? "sky" : "astrid" });
      if (b.source === "astrid") astrid.unshift(b.id);
    }
    const pages = await allPages("limit=2&database=astrid");
    expect(pages).toEqual([astrid.slice(0, 2), astrid.slice(2)]);
  });

  it("defaults to 20 per page", async () => {
    for (let i = 0; i < 21; i++) await seedBackup({ created_at: new Date(Date.UTC(2026, 10, 1, i)).toISOString() });
    const res = await list();
    expect(res.body.backups).toHaveLength(20);
    expect(res.body.next_cursor).toEqual(expect.any(String));
  });

  const badQueries: [string, string][] = [
    ["limit=0", "limit"],
    ["limit=101", "limit"],
    ["limit=ten", "limit"],
    ["type=weekly", "type"],
    ["status=deleted", "status"],
    ["database=Not-A-Name", "database"],
    ["sort=asc", "sort"],
    ["cursor=not-a-cursor", "cursor"],
    [`cursor=${btoa(JSON.stringify({ a: 1 }))}`, "cursor"],
  ];
  for (const [query, mention] of badQueries) {
    it(`answers 400 invalid_request for ?${query.slice(0, 30)}`, async () => {
      const res = await list(`?${query}`);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("invalid_request");
      expect(res.body.error.message).toContain(mention);
    });
  }
});

describe("GET /backups/:id", () => {
  it("shows one backup with its manifest key and checksum", async () => {
    const b = await seedBackup({ created_at: "2026-11-01T02:00:00.000Z" });
    const res = await api("GET", `/backups/${b.id}`, { token: VIEWER });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ backup_id: b.id, manifest_key: `manifests/database/${b.id}.json`, sha256: b.sha256 });
  });

  it("answers 404 JSON for an unknown backup", async () => {
    const res = await api("GET", "/backups/db-astrid-20260101T000000Z-nosuch", { token: VIEWER });
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: { code: "not_found", message: "backup not found" } });
  });
});
