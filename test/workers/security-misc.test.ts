// Issue #12, the medium and low findings that live in the Worker: malformed
// percent escapes, the storage GC grace floor, what unauthenticated callers
// learn about a broken config, audit of denied requests, and rotation of
// JOB_TOKEN_SECRET through a list.
import { createExecutionContext, env } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import worker from "../../workers/index.ts";
import { seal, unseal } from "../../workers/crypto.ts";
import { mintJobToken, readJobToken } from "../../workers/repository/job-token.ts";
import { api, auditRows, isoSecondsAgo, resetState, seedBackup, seedJob, sentMessages, VIEWER } from "./helpers.ts";

beforeEach(resetState);

describe("malformed percent escapes", () => {
  it("are a 400 on the object routes, never a 500", async () => {
    for (const path of ["/storage/objects/astrid-data/a%zz", "/storage/objects/astrid-data/%E0%A4%A"]) {
      const res = await api("GET", path);
      expect(res.status, `${path}: ${res.text}`).toBe(400);
      expect(res.body.error.code).toBe("invalid_path");
    }
    const job = await seedJob({ kind: "database.restore", status: "running", backup_id: "db-astrid-20261101T020000Z-aaaaaa", heartbeat_at: isoSecondsAgo(1), params: {} });
    const token = await mintJobToken(env.JOB_TOKEN_SECRET, { job_id: job.id, scope: "read", backup_id: job.backup_id!, expires: Math.floor(Date.now() / 1000) + 600 });
    const res = await worker.fetch(new Request("https://backup.test/repo/v1/objects/packs/a%zz", { headers: { authorization: `Bearer ${token}` } }), env, createExecutionContext());
    expect(res.status).toBe(400);
    expect(((await res.json()) as any).error.code).toBe("invalid_path");
  });
});

describe("restore target injection", () => {
  it("a URL whose database name is a connection string in disguise is refused before anything is queued", async () => {
    const b = await seedBackup({ created_at: isoSecondsAgo(60) });
    for (const name of ["host%3Devil.example%20dbname%3Dpostgres", "postgres%3A%2F%2Fevil.example%2Fx"]) {
      const res = await api("POST", `/backups/${b.id}/restore`, { body: { target: `postgres://postgres@127.0.0.1/${name}` } });
      expect(res.status, res.text).toBe(400);
      expect(res.body.error.message).toContain('may not contain "=" or "://"');
    }
    expect(sentMessages).toEqual([]);
  });
});

describe("storage GC grace", () => {
  it("never goes below GC_GRACE_MINUTES, whatever the request asks", async () => {
    const res = await api("POST", "/storage/gc", { body: { grace_minutes: 0 }, env: { GC_GRACE_MINUTES: "60" } });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toContain("60");
    expect((await api("POST", "/storage/gc", { body: { grace_minutes: 120 }, env: { GC_GRACE_MINUTES: "60" } })).status).toBe(202);
  });
});

describe("unauthenticated callers", () => {
  const broken = { DATABASE_RETENTION_DAYS: "secret-looking-value" };
  it("learn only the code of a config error; an authenticated caller gets the message", async () => {
    const anon = await api("GET", "/backup/database", { token: null, env: broken });
    expect(anon.body.error.code).toBe("config_invalid");
    expect(anon.text).not.toContain("secret-looking-value");
    expect(anon.text).not.toContain("DATABASE_RETENTION_DAYS");
    const health = await api("GET", "/health", { token: null, env: broken });
    expect(health.status).toBe(503);
    expect(health.text).not.toContain("DATABASE_RETENTION_DAYS");
    const viewer = await api("GET", "/backup/database", { token: VIEWER, env: broken });
    expect(viewer.body.error.message).toContain("DATABASE_RETENTION_DAYS");
  });

  it("denied requests (401 and 403) are audited, by fingerprint, never by token", async () => {
    await api("GET", "/backup/database", { token: "not-a-valid-token-at-all-0000" });
    await api("POST", "/backup/database", { token: VIEWER, body: { type: "full" } });
    const denied = (await auditRows()).filter((a) => a.outcome === "denied");
    expect(denied.map((a) => a.action).sort()).toEqual(["GET /backup/database", "POST /backup/database"]);
    expect(JSON.stringify(denied)).not.toContain("not-a-valid-token-at-all-0000");
    expect(JSON.stringify(denied)).not.toContain(VIEWER);
  });
});

describe("JOB_TOKEN_SECRET rotation through a list", () => {
  it("the first secret signs and seals; every listed one verifies and unseals", async () => {
    const grant = { job_id: "job-1", scope: "read" as const, backup_id: "b", expires: Math.floor(Date.now() / 1000) + 60 };
    const old = await mintJobToken("old-secret", grant);
    const sealedOld = await seal("old-secret", "postgres://x");
    expect(await readJobToken("new-secret,old-secret", old, new Date())).toEqual(grant);
    expect(await unseal("new-secret,old-secret", sealedOld)).toBe("postgres://x");
    const fresh = await mintJobToken("new-secret,old-secret", grant);
    expect(await readJobToken("new-secret", fresh, new Date())).toEqual(grant);
    expect(await readJobToken("old-secret", fresh, new Date())).toBeUndefined();
    expect(await unseal("new-secret", await seal("new-secret,old-secret", "v"))).toBe("v");
  });
});

describe("the object routes are audited", () => {
  it("every write and read through /storage/objects is an audit line naming bucket and key", async () => {
    const put = await api("PUT", "/storage/objects/astrid-scratch/audit/me.txt", { rawBody: "hello", headers: { "content-type": "text/plain", "content-length": "5" } });
    expect(put.status, put.text).toBe(201);
    expect((await api("GET", "/storage/objects/astrid-scratch/audit/me.txt")).text).toBe("hello");
    const lines = (await auditRows()).filter((a) => a.action.startsWith("storage.object."));
    expect(lines.map((a) => [a.action, a.target, a.outcome]).sort()).toEqual([
      ["storage.object.get", "astrid-scratch/audit/me.txt", "succeeded"],
      ["storage.object.put", "astrid-scratch/audit/me.txt", "succeeded"],
    ]);
  });
});

describe("restore target hosts", () => {
  const restoreTo = async (target: string, extraEnv: Record<string, unknown> = {}) => {
    const b = await seedBackup({ created_at: isoSecondsAgo(60) });
    return api("POST", `/backups/${b.id}/restore`, { body: { target }, env: extraEnv });
  };

  it("link-local and metadata addresses are refused by default, for database and MLflow targets", async () => {
    for (const host of ["169.254.169.254", "[fe80::1]", "metadata.google.internal", "100.100.100.200"]) {
      const res = await restoreTo(`postgres://u@${host}:5432/x`);
      expect(res.status, `${host}: ${res.text}`).toBe(400);
      expect(res.body.error.message).toMatch(/link-local|metadata/);
    }
    const ml = await seedBackup({ id: "ml-mlflow-20261101T020000Z-abcdef", domain: "ml", created_at: isoSecondsAgo(60) });
    const res = await api("POST", `/backup/ml/${ml.id}/restore`, { body: { target: "http://169.254.169.254/latest/meta-data" } });
    expect(res.status, res.text).toBe(400);
    for (const target of ["http://mlflow.example/?x=/internal", "http://mlflow.example/#frag"]) {
      const r = await api("POST", `/backup/ml/${ml.id}/restore`, { body: { target } });
      expect(r.status, target).toBe(400);
      expect(r.body.error.message).toMatch(/no query or fragment/);
    }
    expect(sentMessages).toEqual([]);
  });

  it("RESTORE_TARGET_HOSTS is an allowlist (exact hosts and .suffixes); the host is in the audit line", async () => {
    const allow = { RESTORE_TARGET_HOSTS: "db.internal.example,.restore.example" };
    expect((await restoreTo("postgres://u@elsewhere.example/x", allow)).status).toBe(400);
    expect((await restoreTo("postgres://u@db.internal.example/x", allow)).status).toBe(202);
    expect((await restoreTo("postgres://u@a.restore.example/x", allow)).status).toBe(202);
    const audit = (await auditRows()).find((a) => a.action === "database.restore" && a.outcome === "accepted");
    expect(audit!.target).toMatch(/-> x on (db\.internal|a\.restore)\.example \(url\)$/);
  });
});

describe("tracking URIs with credentials", () => {
  it("are refused as configuration, without echoing the URI", async () => {
    const res = await api("POST", "/backup/ml", { body: {}, env: { MLFLOW_TRACKING_URI: "https://bob:s3cret-pass@mlflow.example" } });
    expect(res.status, res.text).toBe(500);
    expect(res.body.error.code).toBe("config_invalid");
    expect(res.body.error.message).toContain("MLFLOW_TRACKING_TOKEN");
    expect(res.text).not.toContain("s3cret-pass");
    expect(sentMessages).toEqual([]);
  });
});
