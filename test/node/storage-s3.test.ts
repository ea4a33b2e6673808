// The S3 API side of storage operations against a real S3-compatible server
// (moto_server, started by test/support/moto-setup.ts): lifecycle rules
// applied idempotently, validation before any request, S3 error mapping, and
// the off-site copy from a real local R2 bucket (miniflare) to the server.
//
// moto is not R2: it accepts STANDARD_IA transitions and stores the lifecycle
// configuration but, like R2 locally, never acts on it (objects do not expire
// or move); R2's 24 h application is not something a test can observe. Bucket
// creation in moto needs a real AWS region, so buckets are made with
// region us-east-1 while the lifecycle calls sign with R2's "auto".
import { createHash, randomBytes } from "node:crypto";
import { build } from "esbuild";
import { Miniflare } from "miniflare";
import { AwsClient } from "aws4fetch";
import { afterAll, beforeAll, describe, expect, inject, test } from "vitest";
import { startMoto, type MotoServer } from "../../runner/dev/moto.ts";
import {
  applyLifecycle, lifecycleWarnings, lifecycleXml, LifecycleRulesError, parseLifecycleRules, parseLifecycleXml, r2Part, readLifecycle, versionExpiryDays,
} from "../../workers/storage/lifecycle.ts";
import { partLayout, SOURCE_ETAG_META, syncOffsitePage, type R2Source } from "../../workers/storage/offsite.ts";
import { encodeKey, S3Client, S3Error, S3InputError } from "../../workers/storage/s3/client.ts";

const motoUrl = () => inject("motoUrl");
const creds = { accessKeyId: "test-access-key", secretAccessKey: "test-secret-key-do-not-leak" };
let seq = 0;
const uniqueBucket = (label: string) => `${label}-${process.pid}-${++seq}`;

/** An R2-style client (region "auto") and a bucket made for the test. */
async function freshBucket(label: string): Promise<{ client: S3Client; bucket: string }> {
  const bucket = uniqueBucket(label);
  await new S3Client({ endpoint: motoUrl(), ...creds, region: "us-east-1" }).createBucket(bucket);
  return { client: new S3Client({ endpoint: motoUrl(), ...creds, region: "auto" }), bucket };
}

const RULES = [
  { id: "packs to IA", prefix: "packs/", transition: { days: 30 } },
  { id: "tmp", prefix: "tmp/", expire_days: 7, abort_multipart_days: 1 },
  { id: "all uploads", abort_multipart_days: 7 },
  { id: "versions", prefix: "storage/", version_expire_days: 90 },
];

describe("lifecycle rules through the S3 API", () => {
  test("apply, read back, apply again is a no-op, a change shows in the diff", async () => {
    const { client, bucket } = await freshBucket("lc");
    expect(await client.getLifecycle(bucket)).toBeNull();

    const first = await applyLifecycle(client, bucket, RULES);
    expect(first.applied).toBe(true);
    expect(first.diff.added.map((r) => r.id)).toEqual(["packs to IA", "tmp", "all uploads"]); // the version rule stays ours
    const readBack = await readLifecycle(client, bucket);
    expect(readBack).toEqual(r2Part(parseLifecycleRules(RULES)));
    expect(readBack[0]).toEqual({ id: "packs to IA", prefix: "packs/", enabled: true, transition: { days: 30, storage_class: "STANDARD_IA" } });

    const again = await applyLifecycle(client, bucket, RULES);
    expect(again.applied).toBe(false);
    expect(again.diff).toMatchObject({ added: [], removed: [], changed: [] });
    expect(again.diff.unchanged).toHaveLength(3);

    const changedRules = [{ ...RULES[0]!, transition: { days: 45, storage_class: "InfrequentAccess" } }, RULES[1]!, RULES[3]!];
    const dry = await applyLifecycle(client, bucket, changedRules, { dryRun: true });
    expect(dry).toMatchObject({ applied: false, dry_run: true });
    expect(dry.diff.changed).toEqual([{
      id: "packs to IA",
      before: expect.objectContaining({ transition: { days: 30, storage_class: "STANDARD_IA" } }),
      after: expect.objectContaining({ transition: { days: 45, storage_class: "STANDARD_IA" } }),
    }]);
    expect(dry.diff.removed.map((r) => r.id)).toEqual(["all uploads"]);
    expect((await readLifecycle(client, bucket))[0]!.transition!.days).toBe(30); // dry run wrote nothing

    const real = await applyLifecycle(client, bucket, changedRules);
    expect(real.applied).toBe(true);
    const after = await readLifecycle(client, bucket);
    expect(after.map((r) => r.id)).toEqual(["packs to IA", "tmp"]);
    expect(after[0]!.transition!.days).toBe(45);
    expect((await applyLifecycle(client, bucket, changedRules)).applied).toBe(false);

    // Only a version-store rule left: nothing for R2, so its configuration is removed.
    const onlyVersions = await applyLifecycle(client, bucket, [RULES[3]!]);
    expect(onlyVersions.applied).toBe(true);
    expect(await client.getLifecycle(bucket)).toBeNull();
  });

  test("ids and prefixes with XML-special and non-ASCII characters survive the round trip", async () => {
    const { client, bucket } = await freshBucket("lcx");
    const rules = [{ id: `a<b>&"c'`, prefix: "données/é & <x>/", expire_days: 400, transition: { days: 60 } }];
    await applyLifecycle(client, bucket, rules);
    expect(await readLifecycle(client, bucket)).toEqual([
      { id: `a<b>&"c'`, prefix: "données/é & <x>/", enabled: true, expire_days: 400, transition: { days: 60, storage_class: "STANDARD_IA" } },
    ]);
    expect((await applyLifecycle(client, bucket, rules)).applied).toBe(false);
  });

  test("a rule read back with something the model does not express counts as a change", () => {
    const text = `<LifecycleConfiguration><Rule><ID>d</ID><Filter><Prefix>x/</Prefix></Filter><Status>Enabled</Status>
      <Expiration><Date>2030-01-01T00:00:00Z</Date></Expiration></Rule></LifecycleConfiguration>`;
    expect(parseLifecycleXml(text)).toEqual([{ id: "d", prefix: "x/", enabled: true, unsupported: ["Expiration/Date"] }]);
    expect(parseLifecycleXml(lifecycleXml(r2Part(parseLifecycleRules(RULES))))).toEqual(r2Part(parseLifecycleRules(RULES)));
  });

  // The endpoint is a closed port: any request would fail with NetworkError, so a
  // LifecycleRulesError proves the rules were refused before anything was sent.
  const offline = new S3Client({ endpoint: "http://127.0.0.1:1", ...creds });
  test.each([
    ["days below 1", [{ id: "x", expire_days: 0 }], "rules.0.expire_days: days must be at least 1"],
    ["fractional days", [{ id: "x", transition: { days: 1.5 } }], "rules.0.transition.days: days must be a whole number"],
    ["a class R2 does not have", [{ id: "x", transition: { days: 30, storage_class: "GLACIER" } }], "R2 only transitions to Infrequent Access (STANDARD_IA), not \"GLACIER\""],
    ["transition at or after expiry", [{ id: "x", expire_days: 30, transition: { days: 30 } }], "rules.0.transition.days: a transition after 30 days never happens: the objects expire after 30 days"],
    ["duplicate ids", [{ id: "x", expire_days: 3 }, { id: "x", expire_days: 4 }], "rules.1.id: duplicate rule id \"x\""],
    ["no action", [{ id: "x", prefix: "a/" }], "rules.0: the rule has no action"],
    ["unknown field", [{ id: "x", expire_days: 3, noncurrent_days: 3 }], "rules.0: Unrecognized key: \"noncurrent_days\""],
    ["more than 1,000 rules", Array.from({ length: 1001 }, (_, i) => ({ id: `r${i}`, prefix: `p${i}/`, expire_days: 1 })), "R2 allows at most 1000 lifecycle rules, got 1001"],
  ])("refused before any request: %s", async (_label, rules, message) => {
    const error = await applyLifecycle(offline, "some-bucket", rules).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LifecycleRulesError);
    expect((error as Error).message).toContain(message);
  });

  test("an expiry soon after the move to Infrequent Access is accepted with a billing warning", () => {
    const rules = parseLifecycleRules([{ id: "short", transition: { days: 30 }, expire_days: 45 }, { id: "long", transition: { days: 30 }, expire_days: 60 }]);
    expect(lifecycleWarnings(rules)).toEqual([
      "rule short: objects expire 15 days after moving to Infrequent Access, which bills at least 30 days",
    ]);
  });

  test("versionExpiryDays: the most specific enabled rule, the longest period among equals", () => {
    const rules = parseLifecycleRules([
      { id: "all", version_expire_days: 365 },
      { id: "tmp", prefix: "storage/tmp/", version_expire_days: 7 },
      { id: "tmp2", prefix: "storage/tmp/", version_expire_days: 14 },
      { id: "off", prefix: "storage/tmp/x", enabled: false, version_expire_days: 1 },
      { id: "r2 only", prefix: "storage/other/", expire_days: 3 },
    ]);
    expect(versionExpiryDays(rules, "storage/tmp/x1")).toBe(14);
    expect(versionExpiryDays(rules, "storage/other/y")).toBe(365);
    expect(versionExpiryDays(parseLifecycleRules([{ id: "p", prefix: "a/", version_expire_days: 5 }]), "b/c")).toBeUndefined();
  });
});

describe("S3 errors", () => {
  test("a missing bucket is NoSuchBucket; a missing object heads as null", async () => {
    const { client, bucket } = await freshBucket("err");
    const e = await client.getLifecycle(`missing-${bucket}`).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(S3Error);
    expect(e).toMatchObject({ code: "NoSuchBucket", status: 404, operation: "GetBucketLifecycleConfiguration" });
    expect(await client.head(bucket, "nothing/here")).toBeNull();
    const put = await client.put(`missing-${bucket}`, "k", "x").catch((x: unknown) => x);
    expect(put).toMatchObject({ code: "NoSuchBucket", status: 404 });
  });

  test("an unreachable endpoint is a NetworkError without credentials in it", async () => {
    const client = new S3Client({ endpoint: "http://127.0.0.1:1", ...creds });
    const e = (await client.list("some-bucket").catch((x: unknown) => x)) as S3Error;
    expect(e).toMatchObject({ code: "NetworkError", status: 0 });
    expect(e.message).not.toContain(creds.secretAccessKey);
    expect(e.message).not.toContain(creds.accessKeyId);
  });

  test("bad input is refused before any request", () => {
    expect(() => encodeKey("a/../b")).toThrow(S3InputError);
    expect(() => encodeKey("./a")).toThrow(S3InputError);
    expect(() => encodeKey("")).toThrow(S3InputError);
    expect(() => encodeKey("x".repeat(1025))).toThrow(/1024 bytes/);
    expect(() => encodeKey("bad\uD800")).toThrow(/lone surrogate/);
    expect(encodeKey("a b/c+d/é!'()*")).toBe("a%20b/c%2Bd/%C3%A9%21%27%28%29%2A");
    const client = new S3Client({ endpoint: "http://127.0.0.1:1", ...creds });
    return expect(client.list("Bad_Bucket")).rejects.toThrow(S3InputError);
  });

  describe("with signature checking on", () => {
    let auth: MotoServer;
    let key: { id: string; secret: string };
    const bucket = "auth-bucket";

    beforeAll(async () => {
      // moto checks signatures after its first N actions: those create a user, its key, and a bucket.
      auth = await startMoto({ env: { INITIAL_NO_AUTH_ACTION_COUNT: "3" } });
      const iam = new AwsClient({ accessKeyId: "bootstrap", secretAccessKey: "bootstrap", service: "iam", region: "us-east-1" });
      const call = async (body: string) => {
        const res = await iam.fetch(`${auth.url}/`, { method: "POST", body: `${body}&Version=2010-05-08`, headers: { "content-type": "application/x-www-form-urlencoded" } });
        const text = await res.text();
        if (!res.ok) throw new Error(`IAM: ${res.status} ${text}`);
        return text;
      };
      await call("Action=CreateUser&UserName=backup");
      const created = await call("Action=CreateAccessKey&UserName=backup");
      key = { id: /<AccessKeyId>([^<]+)</.exec(created)![1]!, secret: /<SecretAccessKey>([^<]+)</.exec(created)![1]! };
      await new S3Client({ endpoint: auth.url, ...creds, region: "us-east-1" }).createBucket(bucket);
    });
    afterAll(async () => auth?.stop());

    test.each([
      ["an unknown access key", () => ({ accessKeyId: "AKIAUNKNOWNKEY000000", secretAccessKey: "unknown-secret-value" }), "InvalidAccessKeyId"],
      ["a wrong secret", () => ({ accessKeyId: key.id, secretAccessKey: "wrong-secret-value" }), "SignatureDoesNotMatch"],
      ["a key without permission", () => ({ accessKeyId: key.id, secretAccessKey: key.secret }), "AccessDenied"],
    ])("%s", async (_label, credentials, code) => {
      const c = credentials();
      const e = (await new S3Client({ endpoint: auth.url, ...c }).getLifecycle(bucket).catch((x: unknown) => x)) as S3Error;
      expect(e).toBeInstanceOf(S3Error);
      expect(e).toMatchObject({ code, status: 403 });
      expect(e.message).not.toContain(c.secretAccessKey);
      expect(e.message).not.toContain(c.accessKeyId);
    });
  });
});

describe("objects", () => {
  test("odd keys survive PUT, HEAD and paged LIST", async () => {
    const { client, bucket } = await freshBucket("obj");
    const keys = ["plain", "with space/and+plus", "ünïcødé/日本語/✓", "q?h#p%25&amp;=;", "quote'(paren)*!~", "trailing/", "a//double"];
    for (const k of keys) await client.put(bucket, k, `body of ${k}`, { metadata: { note: "x" } });
    const listed: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const page = await client.list(bucket, { maxKeys: 2, ...(token ? { continuationToken: token } : {}) });
      listed.push(...page.objects.map((o) => o.key));
      token = page.nextContinuationToken;
      pages++;
    } while (token);
    expect(pages).toBe(4);
    expect(listed.sort()).toEqual([...keys].sort());
    for (const k of keys) {
      const head = await client.head(bucket, k);
      expect(head).toMatchObject({ size: Buffer.byteLength(`body of ${k}`), metadata: { note: "x" } });
      expect(await (await client.get(bucket, k)).text()).toBe(`body of ${k}`);
    }
  });
});

describe("off-site copy from a local R2 bucket", () => {
  let mf: Miniflare;
  let src: R2Source & { put(key: string, value: Uint8Array | string, opts?: object): Promise<unknown> };
  const MiB = 1024 * 1024;
  const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

  beforeAll(async () => {
    mf = new Miniflare({
      workers: [{
        config: {
          name: "offsite-source", compatibilityDate: "2026-11-01",
          manifest: { mainModule: "index.js", modules: { "index.js": { type: "esm", contents: "export default { fetch() { return new Response('') } }" } } },
          env: { SRC: { type: "r2", name: "offsite-source" } },
        },
      }],
    });
    src = (await mf.getR2Bucket("SRC")) as unknown as typeof src;
  });
  afterAll(async () => mf?.dispose());

  test("copies every byte, skips on rerun, recopies a change, and sends large objects in parts", async () => {
    const { client, bucket } = await freshBucket("offsite");
    const objects = new Map<string, Uint8Array>([
      ["packs/ab/" + "ab".repeat(32), randomBytes(300 * 1024)],
      ["manifests/database/db-astrid-1.json", new TextEncoder().encode(JSON.stringify({ a: 1 }))],
      ["storage/odd key/ünïcode ✓/a+b=c&d?e#f%g.bin", randomBytes(1000)],
      ["storage/empty", new Uint8Array(0)],
      ["storage/large.bin", randomBytes(11 * MiB + 123)], // > threshold: 3 parts of 5 MiB, 5 MiB, 1 MiB+123
    ]);
    for (const [k, v] of objects) await src.put(k, v, { httpMetadata: { contentType: "application/octet-stream" } });
    const dest = { client, bucket, prefix: "astrid/" };
    const opts = { limit: 2, multipartThreshold: 6 * MiB, partSize: 5 * MiB };

    const run = async () => {
      const total = { copied: 0, skipped: 0, bytes: 0, multipart: 0, pages: 0, failed: 0, changed: 0 };
      let cursor: string | undefined;
      do {
        const page = await syncOffsitePage(src, dest, { ...opts, ...(cursor ? { cursor } : {}) });
        total.copied += page.copied; total.skipped += page.skipped; total.bytes += page.bytes; total.multipart += page.multipart;
        total.failed += page.failed.length; total.changed += page.changed.length; total.pages++;
        cursor = page.next_cursor;
      } while (cursor);
      return total;
    };

    const first = await run();
    const allBytes = [...objects.values()].reduce((n, v) => n + v.length, 0);
    expect(first).toEqual({ copied: 5, skipped: 0, bytes: allBytes, multipart: 1, pages: 3, failed: 0, changed: 0 });
    for (const [k, v] of objects) {
      const res = await client.get(bucket, `astrid/${k}`);
      expect(sha(new Uint8Array(await res.arrayBuffer())), k).toBe(sha(v));
      const head = await client.head(bucket, `astrid/${k}`);
      const r2 = await src.get(k);
      expect(head!.metadata[SOURCE_ETAG_META]).toBe(r2!.etag);
      await r2!.body?.cancel();
    }

    // An S3 multipart etag is "<md5 of part md5s>-<part count>": 5 MiB + 5 MiB + the rest.
    expect((await client.head(bucket, "astrid/storage/large.bin"))!.etag).toMatch(/-3$/);
    expect((await client.head(bucket, "astrid/storage/empty"))!.etag).not.toContain("-");

    const second = await run();
    expect(second).toMatchObject({ copied: 0, skipped: 5, bytes: 0 });

    const changed = randomBytes(1000);
    await src.put("storage/odd key/ünïcode ✓/a+b=c&d?e#f%g.bin", changed);
    const third = await run();
    expect(third).toMatchObject({ copied: 1, skipped: 4, bytes: 1000 });
    const res = await client.get(bucket, "astrid/storage/odd key/ünïcode ✓/a+b=c&d?e#f%g.bin");
    expect(sha(new Uint8Array(await res.arrayBuffer()))).toBe(sha(changed));
  });

  test("part layout: equal parts of the configured size, grown to stay within 10,000 parts", () => {
    expect(partLayout(11 * MiB + 123, 5 * MiB)).toEqual({ size: 5 * MiB, count: 3 });
    expect(partLayout(10 * MiB, 5 * MiB)).toEqual({ size: 5 * MiB, count: 2 });
    const huge = 1000 * 1024 * MiB; // 1000 GiB at 64 MiB parts would need 16,000 parts
    const layout = partLayout(huge, 64 * MiB);
    expect(layout.count).toBeLessThanOrEqual(10_000);
    expect(layout.size * layout.count).toBeGreaterThanOrEqual(huge);
    expect(layout.size * (layout.count - 1)).toBeLessThan(huge);
  });

  test("a key the destination cannot take is reported, the rest of the page is copied", async () => {
    const { client, bucket } = await freshBucket("offsite-bad");
    await src.put("bad/../key", "x");
    await src.put("bad/ok", "y");
    const page = await syncOffsitePage(src, { client, bucket }, { prefix: "bad/" });
    expect(page).toMatchObject({ copied: 1, failed: [{ key: "bad/../key", error: expect.stringContaining('".." segment') }] });
  });

  test("a destination error fails the page (to be retried with the same cursor)", async () => {
    const { client, bucket } = await freshBucket("offsite-err");
    await src.put("err/one", "1");
    await expect(syncOffsitePage(src, { client, bucket: `missing-${bucket}` }, { prefix: "err/" })).rejects.toMatchObject({ code: "NoSuchBucket" });
  });

  test("inside workerd: the Worker's own fetch streams R2 bodies to S3, single and multipart", async () => {
    // The production modules bundled into a Worker, run by workerd with a local R2 binding.
    const bundle = await build({
      entryPoints: [new URL("../support/offsite-worker.ts", import.meta.url).pathname],
      bundle: true, format: "esm", platform: "neutral", write: false, logLevel: "silent",
    });
    const worker = new Miniflare({
      workers: [{
        config: {
          name: "offsite-worker", compatibilityDate: "2026-11-01",
          manifest: { mainModule: "index.js", modules: { "index.js": { type: "esm", contents: bundle.outputFiles[0]!.text } } },
          env: { SRC: { type: "r2", name: "offsite-worker-source" } },
        },
      }],
    });
    try {
      const wsrc = await worker.getR2Bucket("SRC");
      const objects = new Map<string, Uint8Array>([
        ["w/small ünï+code.bin", randomBytes(200 * 1024)],
        ["w/large.bin", randomBytes(6 * MiB + 7)], // 2 parts: 5 MiB + the rest
      ]);
      for (const [k, v] of objects) await wsrc.put(k, v);
      const { client, bucket } = await freshBucket("offsite-workerd");
      const page = async () => {
        const res = await worker.dispatchFetch("http://worker/", {
          method: "POST",
          body: JSON.stringify({ endpoint: motoUrl(), bucket, options: { prefix: "w/", multipartThreshold: 5 * MiB + 1, partSize: 5 * MiB } }),
        });
        const body = (await res.json()) as Record<string, unknown>;
        expect(res.status, JSON.stringify(body)).toBe(200);
        return body;
      };
      expect(await page()).toMatchObject({ copied: 2, skipped: 0, multipart: 1, failed: [] });
      for (const [k, v] of objects) {
        const res = await client.get(bucket, k);
        expect(sha(new Uint8Array(await res.arrayBuffer())), k).toBe(sha(v));
      }
      expect((await client.head(bucket, "w/large.bin"))!.etag).toMatch(/-2$/);
      expect(await page()).toMatchObject({ copied: 0, skipped: 2 });
    } finally {
      await worker.dispose();
    }
  });
});
