// R2 storage protection end to end on the real local stack (wrangler dev:
// workerd with local R2, D1 and Queues): objects written through the Worker,
// replicated, snapshotted by the Queue-driven steps, restored into another
// bucket and read back over HTTP; then the stack is stopped and the snapshot
// is restored with nothing but jq, sha256sum, age and wrangler's CLI (or curl
// from the off-site copy), using the script docs/format.md prints. The
// off-site copy is read as its provider would: no plaintext of any object.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { S3Client } from "../../workers/storage/s3/client.ts";
import { pseudoRandom } from "../../runner/dev/pseudo-random.ts";
import { run, scriptFromDoc, succeeded } from "../support/doc-scripts.ts";
import { serveLocalBucket } from "../support/local-state.ts";
import { startTestStack, type TestStack } from "../support/fixture.ts";

const sha256 = (bytes: Uint8Array | string) => createHash("sha256").update(bytes).digest("hex");


const OBJECTS: Record<string, Uint8Array> = {
  "images/2026/m31.fits": pseudoRandom(300_000, 1),
  "images/2026/m31-copy.fits": pseudoRandom(300_000, 1), // same bytes: one blob
  "catalog/stars.csv": new TextEncoder().encode("id,ra,dec\n1,10.68,41.27\n"),
  "odd keys/ümlaut & space.txt": new TextEncoder().encode("odd"),
  "big/survey.tar": pseudoRandom(6 * 1024 * 1024 + 17, 2), // multipart: above the 5 MiB threshold set below
};

describe("storage on the local stack", () => {
  let stack: TestStack;
  let work: string;
  let snapshotId: string;

  const url = (bucket: string, key: string) => `${stack.workerUrl}/storage/objects/${bucket}/${key.split("/").map(encodeURIComponent).join("/")}`;
  const auth = () => ({ authorization: `Bearer ${stack.secrets.ADMIN_TOKEN}` });
  const download = async (bucket: string, key: string) => {
    const res = await fetch(url(bucket, key), { headers: auth() });
    return { status: res.status, type: res.headers.get("content-type"), sha: sha256(new Uint8Array(await res.arrayBuffer())) };
  };

  // The off-site provider: a real S3-compatible server (moto, from test/support/moto-setup.ts).
  const offsite = { endpoint: inject("motoUrl"), accessKeyId: "offsite-key", secretAccessKey: "offsite-secret-never-shown" };
  const offsiteBucket = `offsite-${process.pid}`;
  const offsiteKeys = async () => {
    const client = new S3Client({ ...offsite, region: "us-east-1" });
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await client.list(offsiteBucket, token ? { continuationToken: token } : {});
      keys.push(...page.objects.map((o) => o.key));
      token = page.nextContinuationToken;
    } while (token);
    return keys;
  };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "astrid-storage-e2e-"));
    await new S3Client({ ...offsite, region: "us-east-1" }).createBucket(offsiteBucket);
    stack = await startTestStack({
      vars: {
        STORAGE_MULTIPART_THRESHOLD_BYTES: String(5 * 1024 * 1024), STORAGE_PART_SIZE_BYTES: String(5 * 1024 * 1024), STORAGE_PAGE_SIZE: "2",
        OFFSITE_S3_ENDPOINT: offsite.endpoint, OFFSITE_S3_BUCKET: offsiteBucket, OFFSITE_ACCESS_KEY_ID: offsite.accessKeyId,
        OFFSITE_SECRET_ACCESS_KEY: offsite.secretAccessKey,
      },
    });
    for (const [key, bytes] of Object.entries(OBJECTS)) {
      const res = await fetch(url("astrid-data", key), {
        method: "PUT", body: bytes, headers: { ...auth(), "content-type": key.endsWith(".fits") ? "image/fits" : "application/octet-stream" },
      });
      expect(res.status, await res.text()).toBe(201);
    }
  });

  afterAll(async () => {
    await stack?.dispose();
    rmSync(work, { recursive: true, force: true });
  });

  it("writes through the Worker are versioned and replicated at once", async () => {
    for (const [key, bytes] of Object.entries(OBJECTS)) expect((await download("astrid-data-replica", key)).sha).toBe(sha256(bytes));
    const versions = await stack.api("GET", `/storage/versions?bucket=astrid-data&key=${encodeURIComponent("images/2026/m31.fits")}`);
    expect(versions.body.versions).toMatchObject([{ action: "put", captured: true, source: "write-through", sha256: sha256(OBJECTS["images/2026/m31.fits"]!) }]);
  });

  it("a snapshot through the Queue, then a second one that copies nothing", async () => {
    const first = await stack.api("POST", "/backup/storage", { bucket: "astrid-data" });
    expect(first.status).toBe(202);
    snapshotId = first.body.jobs[0].snapshot_id;
    const job = await stack.waitForJob(first.body.jobs[0].job_id);
    expect(job.status, JSON.stringify(job.error)).toBe("succeeded");
    // astrid-data is versioned: writing through captured every version's bytes already, so the snapshot
    // references those blobs instead of copying (4 distinct contents for 5 keys).
    expect(job.result).toMatchObject({ objects: 5, copied_objects: 0, parts: 3 });
    const second = await stack.api("POST", "/backup/storage", { bucket: "astrid-data" });
    const again = await stack.waitForJob(second.body.jobs[0].job_id);
    expect(again.result).toMatchObject({ objects: 5, copied_objects: 0, parent_id: snapshotId });
  });

  it("restores the snapshot into another bucket with the same bytes and types", async () => {
    const res = await stack.api("POST", `/backup/storage/${snapshotId}/restore`, { target_bucket: "astrid-data-replica", overwrite: true });
    const job = await stack.waitForJob(res.body.job_id);
    expect(job.status).toBe("succeeded");
    expect(job.result).toMatchObject({ unchanged: 5, restored: 0 }); // the replica already had the same bytes
    const fits = await download("astrid-data-replica", "images/2026/m31.fits");
    expect(fits).toEqual({ status: 200, type: "image/fits", sha: sha256(OBJECTS["images/2026/m31.fits"]!) });
  });

  it("the off-site copy job sends the whole backup bucket to the S3 provider, and a rerun sends nothing", async () => {
    const first = await stack.api("POST", "/storage/offsite/sync", {});
    expect(first.status, JSON.stringify(first.body)).toBe(202);
    const job = await stack.waitForJob(first.body.job_id);
    expect(job.status, JSON.stringify(job.error)).toBe("succeeded");
    const keys = await offsiteKeys();
    expect(keys).toContain(`manifests/storage/${snapshotId}.json`);
    expect(keys.filter((k) => k.startsWith("storage/blobs/"))).toHaveLength(4);
    expect(job.result.copied).toBe(keys.length);
    const again = await stack.waitForJob((await stack.api("POST", "/storage/offsite/sync", {})).body.job_id);
    expect(again.result).toMatchObject({ copied: 0, skipped: keys.length });
    expect(JSON.stringify(again)).not.toContain(offsite.secretAccessKey);
  });

  it("the off-site provider (and whoever reads the backup bucket) finds no plaintext: no object's bytes, key, or SHA-256", async () => {
    const client = new S3Client({ ...offsite, region: "us-east-1" });
    const keys = await offsiteKeys();
    expect(keys.length).toBeGreaterThan(5);
    // What an attacker knows and looks for: a slice of each object's bytes, its key, its SHA-256 (to confirm a file is there).
    // (Needles of 8 bytes or more: a shorter one would turn up in random ciphertext by chance.)
    const needles = Object.entries(OBJECTS).flatMap(([key, bytes]) => [
      Buffer.from(bytes.subarray(0, Math.min(32, bytes.length))), Buffer.from(key.split("/").at(-1)!), Buffer.from(sha256(bytes)),
    ]).filter((n) => n.length >= 8);
    expect(needles.length).toBe(14);
    let blobs = 0;
    for (const key of keys) {
      const body = Buffer.from(await (await client.get(offsiteBucket, key)).arrayBuffer());
      for (const needle of needles) {
        expect(body.includes(needle), `${key} holds ${needle.toString("latin1").slice(0, 40)}`).toBe(false);
        expect(key.includes(needle.toString("latin1")), `the key ${key}`).toBe(false);
      }
      if (key.startsWith("storage/blobs/")) {
        blobs += 1;
        expect(body.subarray(0, 22).toString("latin1")).toBe("age-encryption.org/v1\n");
      }
    }
    expect(blobs).toBe(4);
    // With CHUNK_ID_KEY, the operator finds an object's blob as docs/format.md says, with openssl.
    for (const bytes of Object.values(OBJECTS)) {
      const out = spawnSync("bash", ["-c", `printf 'astrid-storage-blob:%s' "$SHA" | openssl dgst -sha256 -mac HMAC -macopt hexkey:"$CHUNK_ID_KEY"`], {
        env: { ...process.env, SHA: sha256(bytes), CHUNK_ID_KEY: stack.secrets.CHUNK_ID_KEY }, encoding: "utf8",
      });
      const address = out.stdout.trim().split(/\s+/).at(-1)!;
      expect(address).toMatch(/^[0-9a-f]{64}$/);
      expect(keys).toContain(`storage/blobs/${address.slice(0, 2)}/${address}`);
    }
  });

  it("the off-site copy restores with stock tools (curl, age, jq), whole and one key, to identical bytes", async () => {
    const script = join(work, "restore-snapshot.sh");
    writeFileSync(script, scriptFromDoc("restore-snapshot.sh"), { mode: 0o755 });
    const identity = join(work, "identity.txt");
    writeFileSync(identity, `${stack.secrets.AGE_IDENTITY}\n`, { mode: 0o600 });
    // curl signs its GETs itself (SigV4): stock tools against the provider, no code of this project.
    const env = {
      IDENTITY_FILE: identity, OFFSITE: `${offsite.endpoint}/${offsiteBucket}`, OFFSITE_USER: `${offsite.accessKeyId}:${offsite.secretAccessKey}`,
      FETCH: 'curl -sSf --aws-sigv4 "aws:amz:us-east-1:s3" --user "$OFFSITE_USER" -o "$2" "$OFFSITE/$1"',
    };
    const out = join(work, "from-offsite");
    const r = succeeded("restore-snapshot.sh (off-site)", await run("bash", [script, snapshotId, out], { env }));
    expect(r.stdout).toContain("restored 5 objects");
    for (const [key, bytes] of Object.entries(OBJECTS)) expect(sha256(readFileSync(join(out, key)))).toBe(sha256(bytes));
    const one = join(work, "one-from-offsite");
    const single = succeeded("restore-snapshot.sh one key", await run("bash", [script, snapshotId, one, "big/survey.tar"], { env }));
    expect(single.stdout).toContain("restored 1 objects");
    expect(sha256(readFileSync(join(one, "big/survey.tar")))).toBe(sha256(OBJECTS["big/survey.tar"]!));
    // Without the identity the copy is useless: the script stops at the first part.
    writeFileSync(identity, "AGE-SECRET-KEY-1D934Q3YDUFDJTK4MGKCPCK3KWU2P7UTUM3T7KAYDYG6CTJAPKYQQ3HHXHC\n");
    expect((await run("bash", [script, snapshotId, join(work, "no-key")], { env })).code).not.toBe(0);
  });

  it("the snapshot restores without the tool: docs/format.md's script with a plain object fetch, age, jq and sha256sum", async () => {
    await stack.stop();
    const script = join(work, "restore-snapshot.sh");
    writeFileSync(script, scriptFromDoc("restore-snapshot.sh"), { mode: 0o755 });
    const out = join(work, "out");
    const identity = join(work, "identity.txt");
    writeFileSync(identity, `${stack.secrets.AGE_IDENTITY}\n`, { mode: 0o600 });
    const bucket = await serveLocalBucket(stack.persistDir, join(work, "fetched.log"));
    try {
      const r = succeeded("restore-snapshot.sh", await run("bash", [script, snapshotId, out], { env: { ...bucket.env, IDENTITY_FILE: identity } }));
      expect(r.stdout).toContain("restored 5 objects");
    } finally {
      await bucket.close();
    }
    for (const [key, bytes] of Object.entries(OBJECTS)) expect(sha256(readFileSync(join(out, key)))).toBe(sha256(bytes));
  });
});
