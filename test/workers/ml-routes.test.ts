// ML backups on the Worker side, inside workerd: the admin routes'
// validation, auth and audit; secrets kept out of job rows, logs and
// responses; the dispatch carrying them; completion listing an ML backup only
// when its manifest agrees; the ml_backup_schedule cron; retention by
// ml_artifact_retention_days; the config of servers and datasets.
import { createExecutionContext, createScheduledController, env, waitOnExecutionContext } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import worker from "../../workers/index.ts";
import { ConfigError, loadConfig } from "../../workers/config.ts";
import { buildDispatch } from "../../workers/jobs/dispatch.ts";
import { completeJob } from "../../workers/jobs/complete.ts";
import { applyMlRetention } from "../../workers/ml/kinds.ts";
import { kinds } from "../../workers/kinds.ts";
import type { RunnerKind } from "../../workers/jobs/kind.ts";
import { cleanupBackups, retentionPolicy } from "../../workers/database/cleanup.ts";
import { MlBackupId, mlManifestKey, type MlManifest } from "../../workers/shared/format.ts";
import { dispatchSecrets } from "../../workers/shared/protocol.ts";
import type { MlBackupResult } from "../../workers/ml/protocol.ts";
import {
  ctxOf,
  allBackupRows, api, auditRows, catalog, catalogDump, captureLogs, isoDaysAgo, jobRow, recordingQueue, resetState, seedBackup, seedJob,
  testEnv, VIEWER,
} from "./helpers.ts";

beforeEach(resetState);

const TOKEN = "mlflow-secret-token-0123456789";
const ML = {
  MLFLOW_TRACKING_URI: "http://127.0.0.1:5000", MLFLOW_TRACKING_TOKEN: TOKEN,
  ML_DATASETS: JSON.stringify({
    galaxy_labels: { database: "astrid", tables: ["public.labels"], queries: [{ name: "confident", sql: "SELECT 1" }] },
    sky_images: { r2_prefixes: [{ bucket: "astrid-images", prefix: "raw/" }] },
  }),
};

let seq = 0;
const mlId = (kind: "ml" | "td" = "ml", source = "mlflow", at = new Date()) =>
  `${kind}-${source}-${at.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "")}-m${String(++seq).padStart(5, "0")}`;

const seedMl = (created_at: string, p: { domain?: "ml" | "training_data"; source?: string; status?: "completed" | "corrupt" } = {}) => {
  const domain = p.domain ?? "ml";
  const id = mlId(domain === "ml" ? "ml" : "td", p.source ?? (domain === "ml" ? "mlflow" : "galaxy_labels"), new Date(created_at));
  return seedBackup({ id, created_at, domain, source: p.source ?? (domain === "ml" ? "mlflow" : "galaxy_labels"), manifest_key: mlManifestKey(id), status: p.status ?? "completed" });
};

function manifestAndResult(backupId: string): [MlManifest, MlBackupResult] {
  const m: MlManifest = {
    format: "astrid-backup/mlflow", format_version: 1, backup_id: backupId, source: "mlflow", created_at: "2026-11-25T04:00:00.000Z",
    finished_at: "2026-11-25T04:00:09.000Z", scope: { experiment_ids: "all", registry: true }, counts: { runs: 1 }, digest: "b".repeat(64),
    logical_bytes: 1000, compression: { algorithm: "zstd", level: 3 }, encryption: { scheme: "age-x25519", recipients: [String(env.BACKUP_ENCRYPTION_KEY)] },
    chunker: { algorithm: "fastcdc-gear32-nc2", min_size: 16384, avg_size: 65536, max_size: 262144 }, pack_prefix: "packs/",
    blobs: [{ kind: "meta", name: "meta", size: 1000, sha256: "c".repeat(64), chunks: [0] }],
    chunks: [{ id: "1".repeat(64), plain_size: 1000, pack: "e".repeat(64), offset: 0, stored_size: 500, stored_sha256: "f".repeat(64) }],
    stats: { stored_bytes: 500, new_stored_bytes: 500, new_chunks: 1 },
  };
  const r: MlBackupResult = {
    kind: "ml.backup", backup_id: backupId, manifest_key: mlManifestKey(backupId), logical_bytes: 1000, stored_bytes: 500, new_stored_bytes: 500,
    chunk_count: 1, new_chunk_count: 1, sha256: m.digest, started_at: m.created_at, finished_at: m.finished_at, duration_ms: 9000, counts: { runs: 1 },
  };
  return [m, r];
}

describe("POST /backup/ml", () => {
  it("queues a whole-server backup with the registry and answers 202 with an ml- backup id; no secret in the job row or queue", async () => {
    const res = await api("POST", "/backup/ml", { body: {}, env: ML });
    expect(res.status).toBe(202);
    expect(MlBackupId.safeParse(res.body.backup_id).success).toBe(true);
    expect(res.body.backup_id).toMatch(/^ml-mlflow-/);
    const job = await jobRow(res.body.job_id);
    expect(job).toMatchObject({ kind: "ml.backup", status: "queued", backup_id: res.body.backup_id });
    expect(JSON.parse(job!.params)).toEqual({ server: "mlflow", backup_id: res.body.backup_id, registry: true });
    expect(await catalogDump()).not.toContain(TOKEN);
    expect((await auditRows())[0]).toMatchObject({ action: "ml.backup", target: "mlflow", outcome: "accepted" });
  });

  it("backs up chosen experiments without the registry unless asked", async () => {
    const res = await api("POST", "/backup/ml", { body: { experiment_ids: ["1", "7"] }, env: ML });
    expect(JSON.parse((await jobRow(res.body.job_id))!.params)).toMatchObject({ experiment_ids: ["1", "7"], registry: false });
    const both = await api("POST", "/backup/ml", { body: { experiment_ids: ["1"], registry: true }, env: ML });
    expect(JSON.parse((await jobRow(both.body.job_id))!.params).registry).toBe(true);
  });

  const bad: [string, unknown, number, string][] = [
    ["an empty experiment list", { experiment_ids: [] }, 400, "invalid_request"],
    ["an experiment id with odd characters", { experiment_ids: ["1; DROP"] }, 400, "invalid_request"],
    ["repeated experiment ids", { experiment_ids: ["1", "1"] }, 400, "invalid_request"],
    ["an unknown field", { experiment: "1" }, 400, "invalid_request"],
    ["a server that is not configured", { server: "other" }, 400, "invalid_request"],
    ["a registry flag that is not a boolean", { registry: "yes" }, 400, "invalid_request"],
  ];
  for (const [what, body, status, code] of bad) {
    it(`refuses ${what} (${status} ${code}) and queues nothing`, async () => {
      const res = await api("POST", "/backup/ml", { body, env: ML });
      expect(res.status).toBe(status);
      expect(res.body.error.code).toBe(code);
      expect(await catalog().listJobs({ limit: 10 })).toEqual([]);
    });
  }

  it("answers 422 when the server has no tracking URI secret", async () => {
    const res = await api("POST", "/backup/ml", { body: {} });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe("mlflow_not_configured");
  });

  it("needs an admin token: 401 without one, 403 for a viewer", async () => {
    expect((await api("POST", "/backup/ml", { body: {}, env: ML, token: null })).status).toBe(401);
    expect((await api("POST", "/backup/ml", { body: {}, env: ML, token: VIEWER })).status).toBe(403);
    expect(await catalog().listJobs({ limit: 10 })).toEqual([]);
  });
});

describe("POST /backup/training-data", () => {
  it("queues a snapshot of a configured dataset (td- id)", async () => {
    const res = await api("POST", "/backup/training-data", { body: { dataset_id: "galaxy_labels" }, env: ML });
    expect(res.status).toBe(202);
    expect(res.body.backup_id).toMatch(/^td-galaxy_labels-/);
    expect(JSON.parse((await jobRow(res.body.job_id))!.params)).toEqual({ dataset: "galaxy_labels", backup_id: res.body.backup_id });
  });

  it("refuses an unknown dataset and a malformed id", async () => {
    expect((await api("POST", "/backup/training-data", { body: { dataset_id: "nope" }, env: ML })).status).toBe(400);
    expect((await api("POST", "/backup/training-data", { body: { dataset_id: "Bad-Id" }, env: ML })).status).toBe(400);
    expect((await api("POST", "/backup/training-data", { body: {}, env: ML })).status).toBe(400);
  });
});

describe("GET /backup/ml", () => {
  it("lists ML backups only (newest first), or training-data snapshots with domain=training_data", async () => {
    await seedBackup({ created_at: isoDaysAgo(1) }); // a database backup
    const older = await seedMl(isoDaysAgo(3));
    const newer = await seedMl(isoDaysAgo(2));
    const snapshot = await seedMl(isoDaysAgo(1), { domain: "training_data" });
    const ml = (await api("GET", "/backup/ml", { token: VIEWER })).body;
    expect(ml.backups.map((b: any) => b.backup_id)).toEqual([newer.id, older.id]);
    expect(ml.backups[0]).toMatchObject({ domain: "ml", source: "mlflow", status: "completed" });
    const td = (await api("GET", "/backup/ml?domain=training_data")).body;
    expect(td.backups.map((b: any) => b.backup_id)).toEqual([snapshot.id]);
    const db = (await api("GET", "/backup/database")).body;
    expect(db.backups).toHaveLength(1);
  });
});

describe("POST /backup/ml/:id/restore", () => {
  it("restores into a configured server; the job row names it, holds no secret", async () => {
    const b = await seedMl(isoDaysAgo(1));
    const res = await api("POST", `/backup/ml/${b.id}/restore`, { body: { target: "mlflow" }, env: ML });
    expect(res.status).toBe(202);
    const job = await jobRow(res.body.job_id);
    expect(JSON.parse(job!.params)).toEqual({ backup_id: b.id, target_label: "mlflow", target_server: "mlflow", registry: true });
  });

  it("seals a tracking-URI target and its token: neither is stored in clear, the dispatch opens them", async () => {
    const b = await seedMl(isoDaysAgo(1));
    const token = "target-token-very-secret-42";
    const res = await api("POST", `/backup/ml/${b.id}/restore`, { body: { target: "https://mlflow.example.org/", target_token: token, experiment_ids: ["3"] }, env: ML });
    expect(res.status).toBe(202);
    expect(await catalogDump()).not.toContain(token);
    expect(await catalogDump()).not.toContain("https://mlflow.example.org");
    const job = (await catalog().getJob(res.body.job_id))!;
    expect(JSON.parse(job.params)).toMatchObject({ target_label: "mlflow.example.org (url)", experiment_ids: ["3"], registry: false });
    const dispatch = await buildDispatch(kinds.get(job.kind) as RunnerKind<unknown, unknown>, job, ctxOf(testEnv(ML)));
    expect(dispatch).toMatchObject({ kind: "ml.restore", mlflow: { tracking_uri: "https://mlflow.example.org", token }, experiment_ids: ["3"] });
    expect(dispatchSecrets(dispatch)).toContain(token);
  });

  const refused: [string, unknown, number][] = [
    ["a token with a configured server", { target: "mlflow", target_token: "abcdefgh" }, 400],
    ["credentials inside the URI", { target: "https://user:pw@mlflow.example.org" }, 400],
    ["an unconfigured server", { target: "elsewhere" }, 400],
    ["no target", {}, 400],
  ];
  for (const [what, body, status] of refused) {
    it(`refuses ${what}`, async () => {
      const b = await seedMl(isoDaysAgo(1));
      expect((await api("POST", `/backup/ml/${b.id}/restore`, { body, env: ML })).status).toBe(status);
    });
  }

  it("404 for an unknown or a database backup, 400 for a training-data snapshot, 409 for a corrupt one", async () => {
    const db = await seedBackup({ created_at: isoDaysAgo(1) });
    const td = await seedMl(isoDaysAgo(1), { domain: "training_data" });
    const corrupt = await seedMl(isoDaysAgo(1), { status: "corrupt" });
    const body = { body: { target: "mlflow" }, env: ML };
    expect((await api("POST", `/backup/ml/${mlId()}/restore`, body)).status).toBe(404);
    expect((await api("POST", `/backup/ml/${db.id}/restore`, body)).status).toBe(404);
    expect((await api("POST", `/backup/ml/${td.id}/restore`, body)).status).toBe(400);
    expect((await api("POST", `/backup/ml/${corrupt.id}/restore`, body)).status).toBe(409);
    // and the database restore route refuses an ML backup
    expect((await api("POST", `/backups/${corrupt.id}/restore`, { body: { target: "astrid" }, env: ML })).status).toBe(400);
  });

  it("verify of an ML backup is an ml.verify job", async () => {
    const b = await seedMl(isoDaysAgo(1));
    const res = await api("POST", `/backups/${b.id}/verify`, { body: { depth: "full" }, env: ML });
    expect((await jobRow(res.body.job_id))!.kind).toBe("ml.verify");
  });
});

describe("dispatch and completion", () => {
  it("an ml.backup dispatch carries the token, the newest earlier backup of the server as parent, and lists the token as a secret", async () => {
    const parent = await seedMl(isoDaysAgo(2));
    await seedMl(isoDaysAgo(1), { source: "other" });
    const backup_id = mlId();
    const job = await seedJob({ kind: "ml.backup", params: { server: "mlflow", backup_id, registry: true }, backup_id });
    const d = await buildDispatch(kinds.get(job.kind) as RunnerKind<unknown, unknown>, job, ctxOf(testEnv(ML)));
    expect(d).toMatchObject({ kind: "ml.backup", mlflow: { tracking_uri: "http://127.0.0.1:5000", token: TOKEN }, parent_manifest_key: parent.manifest_key });
    expect(dispatchSecrets(d)).toContain(TOKEN);
  });

  it("a training-data dispatch carries the dataset definition and its database URL", async () => {
    const backup_id = mlId("td", "galaxy_labels");
    const job = await seedJob({ kind: "training_data.backup", params: { dataset: "galaxy_labels", backup_id }, backup_id });
    const d = await buildDispatch(kinds.get(job.kind) as RunnerKind<unknown, unknown>, job, ctxOf(testEnv(ML)));
    expect(d).toMatchObject({ kind: "training_data.backup", definition: { tables: ["public.labels"] }, database_url: env.DATABASE_URL });
    expect(dispatchSecrets(d)).toContain(String(env.DATABASE_URL));
  });

  async function completeWith(manifest: MlManifest | undefined, result: MlBackupResult) {
    const job = await seedJob({ kind: "ml.backup", status: "running", params: { server: "mlflow", backup_id: result.backup_id, registry: true }, backup_id: result.backup_id });
    if (manifest) await env.BACKUPS.put(mlManifestKey(result.backup_id), JSON.stringify(manifest));
    return completeJob(ctxOf(testEnv({ ...ML, DATABASE_VERIFY_AFTER_BACKUP: "off" })), kinds, job.id, { status: "succeeded", result });
  }

  it("lists an ML backup (domain ml) when its manifest agrees with the report", async () => {
    const [m, r] = manifestAndResult(mlId());
    const settled = await completeWith(m, r);
    expect(settled?.status).toBe("succeeded");
    expect(await allBackupRows()).toEqual([expect.objectContaining({ id: r.backup_id, domain: "ml", source: "mlflow", sha256: m.digest })]);
  });

  it("fails the job and lists nothing when the manifest is missing or disagrees", async () => {
    const [, r1] = manifestAndResult(mlId());
    expect((await completeWith(undefined, r1))?.error_code).toBe("manifest_mismatch");
    const [m2, r2] = manifestAndResult(mlId());
    expect((await completeWith(m2, { ...r2, sha256: "0".repeat(64) }))?.error_code).toBe("manifest_mismatch");
    expect(await allBackupRows()).toEqual([]);
  });
});

describe("schedule and retention", () => {
  it("the 04:00 cron backs up the MLflow server and every dataset, and applies ML retention", async () => {
    const old = await seedMl(isoDaysAgo(120));
    await seedMl(isoDaysAgo(10));
    const queued: unknown[] = [];
    const { logs } = await captureLogs(async () => {
      const ctx = createExecutionContext();
      await worker.scheduled(createScheduledController({ cron: "0 4 * * *", scheduledTime: Date.now() }), testEnv({ ...ML, JOBS: recordingQueue(queued as never[]) }), ctx);
      await waitOnExecutionContext(ctx);
    });
    const jobs = await catalog().listJobs({ limit: 10 });
    expect(jobs.map((j) => j.kind).sort()).toEqual(["ml.backup", "training_data.backup", "training_data.backup"]);
    expect(queued).toHaveLength(3);
    expect((await allBackupRows()).map((b) => b.id)).not.toContain(old.id);
    expect(logs).not.toContain(TOKEN);
  });

  it("keeps ML backups ml_artifact_retention_days (90), and database cleanup leaves them alone", async () => {
    const db40 = await seedBackup({ created_at: isoDaysAgo(40) });
    await seedBackup({ created_at: isoDaysAgo(1) });
    const ml80 = await seedMl(isoDaysAgo(80));
    const ml100 = await seedMl(isoDaysAgo(100));
    await seedMl(isoDaysAgo(1));
    const td100 = await seedMl(isoDaysAgo(100), { domain: "training_data" });
    await seedMl(isoDaysAgo(1), { domain: "training_data" });
    const config = loadConfig(testEnv(ML));
    const dbOutcome = await cleanupBackups(ctxOf(testEnv(ML)), { policy: retentionPolicy(config), dryRun: false });
    expect(dbOutcome.backup_ids).toEqual([db40.id]);
    const [ml, td] = await applyMlRetention(ctxOf(testEnv(ML)));
    expect(ml!.backup_ids).toEqual([ml100.id]);
    expect(td!.backup_ids).toEqual([td100.id]);
    const left = (await allBackupRows()).map((b) => b.id);
    expect(left).toContain(ml80.id);
    expect(left).not.toContain(ml100.id);
    const shorter = loadConfig(testEnv({ ...ML, ML_ARTIFACT_RETENTION_DAYS: "30" }));
    expect((await applyMlRetention({ ...ctxOf(testEnv(ML)), config: shorter }, true))[0]!.backup_ids).toEqual([ml80.id]);
  });
});

describe("catalog rebuild", () => {
  it("re-lists ML backups from their manifests in R2", async () => {
    const [m] = manifestAndResult(mlId());
    await env.BACKUPS.put(mlManifestKey(m.backup_id), JSON.stringify(m));
    const restored: string[] = [];
    let cursor: string | undefined;
    do { // database manifests, then ML, then storage snapshots
      const res = await api("POST", "/catalog/rebuild", { body: cursor ? { cursor } : {} });
      restored.push(...res.body.restored);
      cursor = res.body.next_cursor;
    } while (cursor);
    expect(restored).toEqual([m.backup_id]);
    expect(await allBackupRows()).toEqual([expect.objectContaining({ id: m.backup_id, domain: "ml", source: "mlflow", sha256: m.digest })]);
  });
});

describe("ML config", () => {
  const base = { BACKUP_ENCRYPTION_KEY: env.BACKUP_ENCRYPTION_KEY };
  it("names several servers, each with its own URI and token secrets", () => {
    const config = loadConfig({ ...base, ML_SERVERS: "prod,staging" });
    expect(config.ml_servers.staging).toEqual({ uri_secret: "MLFLOW_TRACKING_URI_STAGING", token_secret: "MLFLOW_TRACKING_TOKEN_STAGING" });
    expect(config.default_ml_server).toBe("prod");
    expect(config.ml_backup_schedule).toBe("0 4 * * *");
    expect(config.ml_artifact_retention_days).toBe(90);
  });

  const invalid: [string, string][] = [
    ["not JSON", "{galaxy"],
    ["a dataset with nothing in it", JSON.stringify({ d: {} })],
    ["tables without a database", JSON.stringify({ d: { tables: ["labels"] } })],
    ["an unconfigured database", JSON.stringify({ d: { database: "nope", tables: ["labels"] } })],
    ["a bad table name", JSON.stringify({ d: { database: "astrid", tables: ["labels; drop"] } })],
    ["a bad bucket name", JSON.stringify({ d: { r2_prefixes: [{ bucket: "No_Such", prefix: "" }] } })],
    ["an unknown field", JSON.stringify({ d: { database: "astrid", tables: ["t"], extra: 1 } })],
  ];
  for (const [what, value] of invalid) {
    it(`ML_DATASETS with ${what} is a ConfigError naming ML_DATASETS`, () => {
      expect(() => loadConfig({ ...base, ML_DATASETS: value })).toThrow(ConfigError);
      expect(() => loadConfig({ ...base, ML_DATASETS: value })).toThrow(/ML_DATASETS/);
    });
  }
});
