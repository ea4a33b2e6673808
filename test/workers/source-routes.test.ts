// The runner reads protected R2 buckets only through the Worker, and only
// what a training-data job's dataset names: a prefix of a configured bucket.
import { createExecutionContext, env } from "cloudflare:test";
import worker from "../../workers/index.ts";
import { beforeEach, describe, expect, it } from "vitest";
import { mintJobToken } from "../../workers/repository/job-token.ts";
import { resetState, seedJob, testEnv } from "./helpers.ts";
import { data, resetStorage } from "./storage-support.ts";

beforeEach(async () => {
  await resetState();
  await resetStorage();
});

const DATASETS = JSON.stringify({ sky: { r2_prefixes: [{ bucket: "astrid-data", prefix: "raw/" }] } });
async function tokenFor(kind: string, params: unknown) {
  const job = await seedJob({ kind, status: "running", params, heartbeat_at: new Date().toISOString() });
  return mintJobToken(env.JOB_TOKEN_SECRET, { job_id: job.id, scope: "write", backup_id: "td-x", expires: Math.floor(Date.now() / 1000) + 3600 });
}

const get = (token: string, path: string) =>
  worker.fetch(new Request(`https://backup.test/repo/v1${path}`, { headers: { authorization: `Bearer ${token}` } }), testEnv({ ML_DATASETS: DATASETS }), createExecutionContext());

describe("source bucket reads for training data", () => {
  it("lists and reads inside the dataset's prefix, and nothing else", async () => {
    await data().put("raw/a.fits", "frame a");
    await data().put("secret/b.txt", "not yours");
    const token = await tokenFor("training_data.backup", { dataset: "sky", backup_id: "td-x" });
    const listed = await get(token, "/source/astrid-data/list?prefix=raw/");
    expect(listed.status).toBe(200);
    const body = (await listed.json()) as { objects: { key: string; etag: string }[] };
    expect(body.objects.map((o) => o.key)).toEqual(["raw/a.fits"]);
    const read = await get(token, `/source/astrid-data/objects/raw/a.fits?etag=${body.objects[0]!.etag}`);
    expect(await read.text()).toBe("frame a");
    expect((await get(token, "/source/astrid-data/objects/secret/b.txt")).status).toBe(403);
    expect((await get(token, "/source/astrid-data/list?prefix=")).status).toBe(403);
    expect((await get(token, "/source/astrid-data-replica/list?prefix=raw/")).status).toBe(403);
    await data().put("raw/a.fits", "frame a, rewritten");
    expect((await get(token, `/source/astrid-data/objects/raw/a.fits?etag=${body.objects[0]!.etag}`)).status).toBe(412);
  });

  it("other jobs may not read source buckets at all", async () => {
    await data().put("raw/a.fits", "frame a");
    const token = await tokenFor("database.backup", { database: "astrid", type: "full", backup_id: "db-x" });
    const res = await get(token, "/source/astrid-data/list?prefix=raw/");
    expect(res.status).toBe(403);
  });
});

const put = (token: string, path: string, body: string) =>
  worker.fetch(new Request(`https://backup.test/repo/v1${path}`, {
    method: "PUT", body, headers: { authorization: `Bearer ${token}`, "content-length": String(new TextEncoder().encode(body).length) },
  }), testEnv({ ML_DATASETS: DATASETS }), createExecutionContext());

describe("target bucket writes for a training-data restore", () => {
  const restoreParams = { backup_id: "td-sky-20260101T000000Z-abcdef", target_label: "r2 astrid-data/restored/", bucket: "astrid-data", prefix: "restored/" };

  it("writes and reads back under the restore's prefix, and nowhere else", async () => {
    const token = await tokenFor("training_data.restore", restoreParams);
    expect((await put(token, "/source/astrid-data/objects/restored/raw/a.fits", "frame a")).status).toBe(201);
    expect(await (await data().get("restored/raw/a.fits"))!.text()).toBe("frame a");
    expect(await (await get(token, "/source/astrid-data/objects/restored/raw/a.fits")).text()).toBe("frame a");
    expect((await put(token, "/source/astrid-data/objects/raw/a.fits", "overwrite the source")).status).toBe(403);
    expect((await put(token, "/source/astrid-data-replica/objects/restored/a.fits", "x")).status).toBe(403);
    expect((await put(token, "/source/astrid-data/objects/restored/../raw/a.fits", "x")).status).toBeGreaterThanOrEqual(400);
    expect(await data().get("raw/a.fits")).toBeNull();
  });

  it("a training-data backup may read its prefixes but not write to them", async () => {
    const token = await tokenFor("training_data.backup", { dataset: "sky", backup_id: "td-x" });
    expect((await put(token, "/source/astrid-data/objects/raw/new.fits", "x")).status).toBe(403);
    expect(await data().get("raw/new.fits")).toBeNull();
  });
});
