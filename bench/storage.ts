// Storage benchmark: snapshots of many small objects and of a few large ones
// through the real local stack (wrangler dev: workerd with local R2, D1 and
// Queues), a second snapshot with nothing changed, and replication lag for a
// burst of writes announced the way R2 event notifications are (via the Queue).
//
//   npm run bench:storage -- [--small 10000] [--large 3] [--large-mb 200] [--burst 1000]
//
// Prints objects/s and MB/s; every figure comes from the Worker's own job
// results and replication log, and the bytes are checked by a restore.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createHash } from "node:crypto";
import { generateLocalSecrets } from "../runner/dev/secrets.ts";
import { freePort } from "../runner/dev/stack.ts";
import { freezeCode } from "./support/frozen-code.ts";
import { pseudoRandom } from "../runner/dev/pseudo-random.ts";
import { forEachLimited } from "../workers/shared/concurrency.ts";
import { sampleRss, descendantPids } from "./support/proc.ts";

const { values: args } = parseArgs({
  options: {
    small: { type: "string", default: "10000" },
    large: { type: "string", default: "3" },
    "large-mb": { type: "string", default: "200" },
    burst: { type: "string", default: "1000" },
  },
});
const SMALL = Number(args.small);
const LARGE = Number(args.large);
const LARGE_BYTES = Number(args["large-mb"]) * 1024 * 1024;
const BURST = Number(args.burst);
const MiB = 1024 * 1024;

const secrets = await generateLocalSecrets();
const dir = mkdtempSync(join(tmpdir(), "astrid-bench-storage-"));
// No static replica: the burst switches replication on through the API, then off again. No versioning:
// written-through objects would have their blobs captured on write, and the snapshots would copy nothing.
const code = await freezeCode();
const stack = await code.startStack({
  dir, workerPort: await freePort(), runnerPort: await freePort(), output: "files",
  vars: { ...secrets, STORAGE_REPLICATION: "", STORAGE_VERSIONING_ENABLED: "false" },
});

async function api(method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(stack.workerUrl + path, {
    method, headers: { authorization: `Bearer ${secrets.ADMIN_TOKEN}`, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

async function put(key: string, body: Uint8Array | ReadableStream<Uint8Array>, length: number, capture = ""): Promise<void> {
  const res = await fetch(`${stack.workerUrl}/storage/objects/astrid-data/${key}${capture}`, {
    method: "PUT", body, duplex: "half",
    headers: { authorization: `Bearer ${secrets.ADMIN_TOKEN}`, "content-length": String(length), "content-type": "application/octet-stream" },
  } as RequestInit);
  if (!res.ok) throw new Error(`PUT ${key}: ${res.status} ${await res.text()}`);
}

async function waitForJob(jobId: string, timeoutMs = 30 * 60_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (Date.now() > deadline) throw new Error(`job ${jobId} did not finish in ${timeoutMs / 60_000} minutes`);
    const job = await api("GET", `/jobs/${jobId}`);
    if (job.status === "succeeded") return job.result;
    if (job.status === "failed") throw new Error(`job ${jobId} failed: ${JSON.stringify(job.error)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function snapshot(prefix: string) {
  const started = performance.now();
  const { jobs } = await api("POST", "/backup/storage", { bucket: "astrid-data", prefix });
  const result = await waitForJob(jobs[0].job_id);
  return { seconds: (performance.now() - started) / 1000, result, snapshot_id: jobs[0].snapshot_id as string };
}

const workerdRss = () => {
  const pids = descendantPids("workerd");
  return pids.length ? sampleRss(pids[0]!, 100) : undefined;
};

/** A large object as a stream of 1 MiB pieces: never whole in this process either. */
function largeStream(size: number, seed: number, hash: ReturnType<typeof createHash>): ReadableStream<Uint8Array> {
  let sent = 0;
  const piece = pseudoRandom(MiB, seed);
  return new ReadableStream({
    pull(controller) {
      if (sent >= size) return controller.close();
      const n = Math.min(MiB, size - sent);
      const chunk = piece.slice(0, n);
      chunk[0] = (sent / MiB) & 0xff; // every MiB differs
      hash.update(chunk);
      controller.enqueue(chunk);
      sent += n;
    },
  });
}

try {
  console.log(`storage bench: ${SMALL} small objects, ${LARGE} x ${LARGE_BYTES / MiB} MiB, burst of ${BURST} (2 cores, local wrangler dev)`);

  // 1. Replication lag for a burst of writes, announced through the events Queue as R2 would.
  await waitForJob((await api("POST", "/storage/replication", { source: "astrid-data", target: "astrid-data-replica" })).initial_sync_job.job_id);
  const burstStart = performance.now();
  await forEachLimited([...Array(BURST).keys()], 16, (i) => put(`burst/${String(i).padStart(5, "0")}.json`, pseudoRandom(2048, i), 2048, "?capture=queue"));
  const writeSeconds = (performance.now() - burstStart) / 1000;
  let status: any;
  for (;;) {
    status = (await api("GET", "/storage/replication")).buckets.find((b: any) => b.bucket === "astrid-data");
    if (status.lag_seconds.changes_last_hour >= BURST) break;
    if (performance.now() - burstStart > 600_000) throw new Error("replication did not catch up in 10 minutes");
    await new Promise((r) => setTimeout(r, 250));
  }
  const drainSeconds = (performance.now() - burstStart) / 1000;
  console.log(`replication burst: ${BURST} writes in ${writeSeconds.toFixed(1)} s; all replicated after ${drainSeconds.toFixed(1)} s`);
  console.log(`  lag p50 ${status.lag_seconds.p50.toFixed(2)} s, p99 ${status.lag_seconds.p99.toFixed(2)} s, max ${status.lag_seconds.max.toFixed(2)} s (event time -> replica written)`);
  await api("DELETE", "/storage/replication/astrid-data");

  // 2. Many small objects.
  const seedStart = performance.now();
  await forEachLimited([...Array(SMALL).keys()], 16, (i) => put(`small/${String(i % 100).padStart(2, "0")}/${i}.dat`, pseudoRandom(1024 + (i % 3072), i + 7), 1024 + (i % 3072)));
  console.log(`seeded ${SMALL} small objects through the Worker in ${((performance.now() - seedStart) / 1000).toFixed(1)} s`);
  const rss = workerdRss();
  const small1 = await snapshot("small/");
  const small2 = await snapshot("small/");
  const smallMb = small1.result.bytes / MiB;
  console.log(`small, first snapshot: ${small1.result.objects} objects, ${smallMb.toFixed(1)} MiB in ${small1.seconds.toFixed(1)} s = ${(small1.result.objects / small1.seconds).toFixed(0)} objects/s, ${(smallMb / small1.seconds).toFixed(2)} MB/s; copied ${small1.result.copied_objects}`);
  console.log(`small, second snapshot (nothing changed): ${small2.seconds.toFixed(1)} s = ${((small2.seconds / small1.seconds) * 100).toFixed(1)}% of the first; copied ${small2.result.copied_objects} objects`);

  // 3. A few large objects.
  const digests: Record<string, string> = {};
  for (let i = 0; i < LARGE; i++) {
    const hash = createHash("sha256");
    await put(`large/survey-${i}.tar`, largeStream(LARGE_BYTES, i + 1, hash), LARGE_BYTES);
    digests[`large/survey-${i}.tar`] = hash.digest("hex");
  }
  const large1 = await snapshot("large/");
  const large2 = await snapshot("large/");
  const largeMb = large1.result.bytes / MiB;
  console.log(`large, first snapshot: ${large1.result.objects} objects, ${largeMb.toFixed(0)} MiB in ${large1.seconds.toFixed(1)} s = ${(largeMb / large1.seconds).toFixed(1)} MB/s; copied ${large1.result.copied_objects}`);
  console.log(`large, second snapshot (nothing changed): ${large2.seconds.toFixed(2)} s = ${((large2.seconds / large1.seconds) * 100).toFixed(1)}% of the first; copied ${large2.result.copied_objects} objects`);
  if (rss) console.log(`workerd peak RSS during the snapshots: ${(rss.stop().peak_rss_sampled_bytes / MiB).toFixed(0)} MiB`);

  // 4. The bytes are what was written: restore one large object into the replica bucket and hash it.
  const restoreStart = performance.now();
  const restore = await api("POST", `/backup/storage/${large1.snapshot_id}/restore`, { target_bucket: "astrid-data-replica", key: "large/survey-0.tar", overwrite: true });
  await waitForJob(restore.job_id);
  console.log(`restore of one ${LARGE_BYTES / MiB} MiB object: ${((performance.now() - restoreStart) / 1000).toFixed(1)} s`);
  const download = await fetch(`${stack.workerUrl}/storage/objects/astrid-data-replica/large/survey-0.tar`, { headers: { authorization: `Bearer ${secrets.ADMIN_TOKEN}` } });
  const hash = createHash("sha256");
  for await (const chunk of download.body!) hash.update(chunk);
  if (hash.digest("hex") !== digests["large/survey-0.tar"]) throw new Error("the restored object differs from what was written");
  if (small2.result.copied_objects !== 0 || large2.result.copied_objects !== 0) throw new Error("an unchanged snapshot copied objects");
  if (small1.result.copied_objects !== SMALL || large1.result.copied_objects !== LARGE) throw new Error("a first snapshot did not copy every object");
  console.log("checked: the restored object hashes the same as written; second snapshots copied 0 objects");
} finally {
  await stack.stop();
  rmSync(dir, { recursive: true, force: true });
  code.dispose();
}
