// Bearer-token auth of the admin API: ADMIN_TOKEN may change things,
// VIEWER_TOKEN may read, both may hold comma-separated lists for rotation.
import { beforeEach, describe, expect, it } from "vitest";
import { ADMIN, ADMIN_ROTATED, api, auditRows, resetState, seedBackup, sentMessages, VIEWER } from "./helpers.ts";

beforeEach(resetState);

const expectJsonError = (res: { status: number; body: any }, status: number, code: string) => {
  expect(res.status).toBe(status);
  expect(res.body).toEqual({ error: { code, message: expect.any(String) } });
  expect(res.body.error.message.length).toBeGreaterThan(0);
};

describe("missing or wrong credentials", () => {
  it("answers 401 JSON when no Authorization header is sent", async () => {
    const res = await api("GET", "/backup/database", { token: null });
    expectJsonError(res, 401, "unauthorized");
    expect(res.headers.get("content-type")).toContain("application/json");
  });

  it("answers 401 for a non-Bearer scheme", async () => {
    const res = await api("GET", "/backup/database", { token: null, headers: { authorization: `Basic ${btoa(`admin:${ADMIN}`)}` } });
    expectJsonError(res, 401, "unauthorized");
  });

  it("answers 401 for an unknown token and does not start a backup with it", async () => {
    const res = await api("POST", "/backup/database", { token: "not-a-real-token-at-all-0000", body: { type: "full" } });
    expectJsonError(res, 401, "unauthorized");
    expect(sentMessages).toEqual([]);
  });

  it("answers 401 for a token that only differs in case from a real one", async () => {
    const res = await api("GET", "/backup/database", { token: ADMIN.toUpperCase() });
    expectJsonError(res, 401, "unauthorized");
  });

  it("ignores configured tokens shorter than 16 characters", async () => {
    const res = await api("GET", "/backup/database", { token: "short", env: { ADMIN_TOKEN: "short", VIEWER_TOKEN: "" } });
    expectJsonError(res, 401, "unauthorized");
  });

  it("rejects every token when no tokens are configured", async () => {
    const res = await api("GET", "/backup/database", { env: { ADMIN_TOKEN: undefined, VIEWER_TOKEN: undefined } });
    expectJsonError(res, 401, "unauthorized");
  });
});

describe("admin tokens", () => {
  it("accept both tokens of a rotation list", async () => {
    for (const token of [ADMIN, ADMIN_ROTATED]) {
      const res = await api("POST", "/backup/database", { token, body: { type: "full" } });
      expect(res.status).toBe(202);
    }
    expect(sentMessages).toHaveLength(2);
  });

  it("trim whitespace around list entries", async () => {
    const res = await api("GET", "/backup/database", { token: "spaced-admin-token-000000", env: { ADMIN_TOKEN: "  other-admin-token-0000000 , spaced-admin-token-000000  " } });
    expect(res.status).toBe(200);
  });

  it("accept a lower-case 'bearer' scheme", async () => {
    const res = await api("GET", "/backup/database", { token: null, headers: { authorization: `bearer ${ADMIN}` } });
    expect(res.status).toBe(200);
  });

  it("may read as well as write", async () => {
    expect((await api("GET", "/backup/database")).status).toBe(200);
    expect((await api("GET", "/audit")).status).toBe(200);
  });

  it("are audited by fingerprint, never by value", async () => {
    // The email header is not trusted without Cloudflare Access configured (security-access.test.ts).
    const res = await api("POST", "/backup/database", { token: ADMIN_ROTATED, body: {}, headers: { "cf-access-authenticated-user-email": "ops@astrid.example" } });
    expect(res.status).toBe(202);
    const [entry] = await auditRows();
    expect(entry?.actor).toMatch(/^admin:[0-9a-f]{8}$/);
    expect(JSON.stringify(await auditRows())).not.toContain(ADMIN_ROTATED);
  });

  it("give the two rotated tokens different fingerprints", async () => {
    await api("POST", "/backup/database", { token: ADMIN, body: {} });
    await api("POST", "/backup/database", { token: ADMIN_ROTATED, body: {} });
    const actors = (await auditRows()).map((e) => e.actor);
    expect(new Set(actors).size).toBe(2);
  });
});

describe("viewer tokens", () => {
  beforeEach(async () => {
    await seedBackup({ id: "db-astrid-20261101T020000Z-aaaaaa", created_at: "2026-11-01T02:00:00.000Z" });
  });

  it("may list backups, read one backup and read jobs", async () => {
    const list = await api("GET", "/backup/database", { token: VIEWER });
    expect(list.status).toBe(200);
    expect(list.body.backups.map((b: any) => b.backup_id)).toEqual(["db-astrid-20261101T020000Z-aaaaaa"]);
    expect((await api("GET", "/backups/db-astrid-20261101T020000Z-aaaaaa", { token: VIEWER })).status).toBe(200);
    expect((await api("GET", "/jobs", { token: VIEWER })).status).toBe(200);
  });

  const writes: [string, string, unknown][] = [
    ["POST", "/backup/database", { type: "full" }],
    ["POST", "/backups/db-astrid-20261101T020000Z-aaaaaa/verify", {}],
    ["POST", "/backups/db-astrid-20261101T020000Z-aaaaaa/restore", { target: "astrid" }],
    ["POST", "/backup/database/cleanup", { retention_days: 1 }],
  ];
  for (const [method, path, body] of writes) {
    it(`are refused with 403 on ${method} ${path.replace(/db-astrid-\S+?\//, ":id/")} and change nothing`, async () => {
      const res = await api(method, path, { token: VIEWER, body });
      expectJsonError(res, 403, "forbidden");
      expect(sentMessages).toEqual([]);
      expect((await api("GET", "/backup/database")).body.backups).toHaveLength(1);
      expect((await api("GET", "/jobs")).body.jobs).toEqual([]);
    });
  }

  it("may not read the audit log", async () => {
    expectJsonError(await api("GET", "/audit", { token: VIEWER }), 403, "forbidden");
  });
});

describe("unauthenticated routes", () => {
  it("serve /health without a token", async () => {
    const res = await api("GET", "/health", { token: null });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: "ok" });
  });

  it("answer unknown routes with a JSON 404", async () => {
    const res = await api("GET", "/no/such/route");
    expectJsonError(res, 404, "not_found");
  });
});
