// Fuzzes every admin route from the Worker's own OpenAPI document with
// schemathesis (pinned, runner/dev/schemathesis.ts) against the real local
// stack: wrangler dev (local R2, D1, Queues), the runner, a scratch
// PostgreSQL database. Verdict: no 5xx, every response matches the document
// (success bodies against each route's own response schema, and every
// 4xx/5xx in the shared {error:{code,message}} shape), and invalid requests
// are refused with a 4xx. Bounded by a fixed
// number of examples per operation and a fixed seed, so the run is repeatable.
//
// Every optional service is configured so its routes really run: the off-site
// copy and R2's S3 API (lifecycle rules) against moto. The one that cannot run
// here is the Cloudflare account API (Bucket Locks): its two routes answer the
// documented 503 not_configured, which schemathesis is told to expect for
// those two operations only, and this test checks that it was nothing else.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { S3Client } from "../../workers/storage/s3/client.ts";
import { psql } from "../../runner/dev/postgres.ts";
import { ensureSchemathesis } from "../../runner/dev/schemathesis.ts";
import { createDatabase, dropDatabase, scratchName, startTestStack, testPg, type TestStack } from "../support/fixture.ts";

const MAX_EXAMPLES = Number(process.env.FUZZ_MAX_EXAMPLES ?? 10);
const SEED = Number(process.env.FUZZ_SEED ?? 20261127);
const CHECKS = ["not_a_server_error", "status_code_conformance", "content_type_conformance", "response_schema_conformance", "negative_data_rejection"];

/** Operations whose service cannot run here, and the one 5xx they may answer. */
const UNCONFIGURABLE = { paths: ["/storage/locks"], status: 503, code: "not_configured" };

const pg = testPg();
const s3 = { endpoint: inject("motoUrl"), accessKeyId: "fuzz-key", secretAccessKey: "fuzz-secret" };
const offsiteBucket = `fuzz-offsite-${process.pid}`;
const database = scratchName("fuzz");
let stack: TestStack;
let work: string;
let st: string;
/** Real ids for the path parameters that name stored things: random ids would only ever reach the 404. */
const known: Record<string, string> = {};

beforeAll(async () => {
  // Installed before the stack starts: on a fresh clone the pip install takes a while, and a stack left idle
  // that long met its first request with a closed socket (seen in a clean-clone CI run).
  st = await ensureSchemathesis();
  await createDatabase(pg, database);
  const client = new S3Client({ ...s3, region: "us-east-1" });
  // moto stands in for the off-site provider and for R2's S3 API (the buckets the stack binds).
  for (const bucket of [offsiteBucket, "astrid-backups", "astrid-data", "astrid-data-replica"]) await client.createBucket(bucket).catch(() => {});
  stack = await startTestStack({
    vars: {
      DATABASE_URL: pg.url(database),
      OFFSITE_S3_ENDPOINT: s3.endpoint, OFFSITE_S3_BUCKET: offsiteBucket, OFFSITE_ACCESS_KEY_ID: s3.accessKeyId, OFFSITE_SECRET_ACCESS_KEY: s3.secretAccessKey,
      R2_S3_ENDPOINT: s3.endpoint, R2_ACCESS_KEY_ID: s3.accessKeyId, R2_SECRET_ACCESS_KEY: s3.secretAccessKey,
    },
  });
  work = mkdtempSync(join(tmpdir(), "astrid-fuzz-"));
  await psql(pg.url(database), "CREATE TABLE stars (id int PRIMARY KEY, name text); INSERT INTO stars SELECT g, 'star ' || g FROM generate_series(1, 100) g;");
  const backup = await stack.api("POST", "/backup/database", { type: "full" });
  expect(backup.status, JSON.stringify(backup.body)).toBe(202);
  expect((await stack.waitForJob(backup.body.job_id)).status).toBe("succeeded");
  const put = await fetch(`${stack.workerUrl}/storage/objects/astrid-data/fuzz/one.txt`, { method: "PUT", body: "one", headers: { authorization: `Bearer ${stack.secrets.ADMIN_TOKEN}` } });
  expect(put.status).toBe(201);
  const snapshot = await stack.api("POST", "/backup/storage", { bucket: "astrid-data" });
  expect(snapshot.status, JSON.stringify(snapshot.body)).toBe(202);
  expect((await stack.waitForJob(snapshot.body.jobs[0].job_id)).status).toBe("succeeded");
  // A drill run to look up (the catalog_lost scenario: a rebuild into a scratch set, no database to create).
  const run = await stack.api("POST", "/dr/scenarios/catalog_lost/simulate", {});
  expect(run.status, JSON.stringify(run.body)).toBe(202);
  await stack.waitForJob(run.body.job_id);
  Object.assign(known, {
    "/dr/runs/{id}": run.body.run_id,
    "/backups/{id}": backup.body.backup_id, "/backups/{id}/restore": backup.body.backup_id, "/backups/{id}/verify": backup.body.backup_id,
    "/jobs/{id}": backup.body.job_id,
    "/backup/storage/{id}": snapshot.body.jobs[0].snapshot_id, "/backup/storage/{id}/restore": snapshot.body.jobs[0].snapshot_id,
  });
}, 300_000);

afterAll(async () => {
  await stack?.dispose();
  await dropDatabase(pg, database).catch(() => {});
  if (work) rmSync(work, { recursive: true, force: true });
});

function run(cmd: string, args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    // In the scratch directory: schemathesis keeps its example database (.schemathesis/) in the working directory,
    // and replaying an earlier run's examples would make a run depend on the ones before it.
    const child = spawn(cmd, args, { cwd: work, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NO_COLOR: "1", COLUMNS: "160" } });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    child.on("error", reject);
    child.on("exit", (code) => resolve({ code, output }));
  });
}

describe("schemathesis against the local stack", () => {
  it("finds no 5xx, no response off the document, no accepted invalid request", async () => {
    const doc = await stack.api("GET", "/openapi.json");
    expect(doc.status).toBe(200);
    const schemaFile = join(work, "openapi.json");
    writeFileSync(schemaFile, JSON.stringify(doc.body));
    const ndjson = join(work, "events.ndjson");
    const config = join(work, "schemathesis.toml");
    writeFileSync(config, [
      ...UNCONFIGURABLE.paths.map((path) =>
        `[[operations]]\ninclude-path = "${path}"\nchecks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", ${UNCONFIGURABLE.status}]\n`),
      ...Object.entries(known).map(([path, id]) => `[[operations]]\ninclude-path = "${path}"\nparameters = { "path.id" = "${id}" }\n`),
    ].join("\n"));
    const { code, output } = await run(st, [
      "--config-file", config, "run", schemaFile, "--url", stack.workerUrl,
      "-H", `Authorization: Bearer ${stack.secrets.ADMIN_TOKEN}`,
      "--checks", CHECKS.join(","), "--max-examples", String(MAX_EXAMPLES), "--seed", String(SEED),
      "--phases", "examples,coverage,fuzzing", "--workers", "2", "--request-timeout", "30",
      "--report", "ndjson", "--report-ndjson-path", ndjson,
    ]);
    console.log(output);
    const events = readFileSync(ndjson, "utf8");
    if (process.env.FUZZ_EVENTS) writeFileSync(process.env.FUZZ_EVENTS, events); // to read a failing run's requests afterwards
    const requests = countRequests(events);
    console.log(`fuzz: ${requests.total} requests over ${requests.operations} operations (max ${MAX_EXAMPLES} examples per operation, seed ${SEED}); by status: ${JSON.stringify(requests.byStatus)}`);
    const documented = Object.entries(doc.body.paths).flatMap(([path, ops]: [string, any]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    const unanswered = documented.filter((op) => !requests.succeeded.has(op));
    console.log(`fuzz: success answers checked against their response schemas on ${requests.succeeded.size} of ${documented.length} operations; never answered 2xx: ${unanswered.join(", ") || "none"}`);
    expect(requests.operations).toBe(Object.values(doc.body.paths).reduce((n: number, ops: any) => n + Object.keys(ops).length, 0));
    // The only 5xx allowed: the documented not_configured of the operations whose service cannot run here.
    expect(requests.misshapen).toEqual([]);
    expect(requests.serverErrors.filter((e) => !(UNCONFIGURABLE.paths.includes(e.path) && e.status === UNCONFIGURABLE.status && e.code === UNCONFIGURABLE.code))).toEqual([]);
    expect(code, output.slice(-6000)).toBe(0);
  }, 600_000);
});

/** Requests and statuses from schemathesis' ndjson event stream. */
function countRequests(text: string) {
  let total = 0;
  const operations = new Set<string>();
  /** "METHOD /path/{param}" of the operations that answered 2xx at least once (their bodies went through the response schema check). */
  const succeeded = new Set<string>();
  const byStatus: Record<string, number> = {};
  const serverErrors: { path: string; status: number; code: string | undefined }[] = [];
  /** Error answers not in the {error:{code,message}} shape (checked here too, not only by schemathesis' schema check). */
  const misshapen: { method: string; path: string; status: number; body: string }[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const event = JSON.parse(line);
    for (const [, value] of Object.entries(event)) walk(value, undefined);
  }
  /** `label`: the operation of the nearest enclosing recorder ("POST /backup/database"); its interactions sit below it. */
  function walk(v: any, label: string | undefined): void {
    if (!v || typeof v !== "object") return;
    if (typeof v.label === "string" && /^(GET|POST|PUT|DELETE) \//.test(v.label)) label = v.label;
    if (v.request && v.response && typeof v.response.status_code === "number") {
      total++;
      byStatus[v.response.status_code] = (byStatus[v.response.status_code] ?? 0) + 1;
      const path = new URL(v.request.uri).pathname;
      if (v.response.status_code < 300 && label) succeeded.add(label);
      if (v.response.status_code >= 500) serverErrors.push({ path, status: v.response.status_code, code: errorBody(v.response)?.error?.code });
      if (v.response.status_code >= 400 && !isErrorShape(errorBody(v.response))) {
        misshapen.push({ method: v.request.method, path, status: v.response.status_code, body: bodyText(v.response).slice(0, 200) });
      }
    }
    if (typeof v.label === "string" && /^(GET|POST|PUT|DELETE) \//.test(v.label)) operations.add(v.label);
    for (const x of Array.isArray(v) ? v : Object.values(v)) walk(x, label);
  }
  return { total, operations: operations.size, byStatus, serverErrors, misshapen, succeeded };
}

const bodyText = (response: any) => Buffer.from(response.content?.$base64 ?? "", "base64").toString();

function errorBody(response: any): any {
  try {
    return JSON.parse(bodyText(response));
  } catch {
    return undefined;
  }
}

const isErrorShape = (b: any) =>
  b !== null && typeof b === "object" && Object.keys(b).join() === "error" &&
  typeof b.error?.code === "string" && b.error.code !== "" && typeof b.error.message === "string" && Object.keys(b.error).sort().join() === "code,message";
