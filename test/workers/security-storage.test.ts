// Issue #12, "storage snapshot blobs and the off-site copy are plaintext":
// whoever reads the backup bucket (an R2 credential, the off-site provider,
// which copies it byte for byte) must find nothing of AstrID's data. Each
// test plays the reader: it lists and reads every object of the backup bucket
// and looks for what it knows (the bytes, the key, the SHA-256 of an object).
// Restores still give identical bytes; snapshots written before (format 1,
// plaintext) stay restorable; a key rotation re-encrypts what new snapshots reference.
import { env } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { Decrypter, Encrypter, generateX25519Identity, identityToRecipient } from "age-encryption";
import { blobKey, snapshotManifestKey, snapshotPartKey, SnapshotManifest } from "../../workers/shared/format.ts";
import { macMetadata } from "../../workers/repository/manifest-mac.ts";
import { openStorageCatalog } from "../../workers/catalog/storage-catalog.ts";
import { api, resetState } from "./helpers.ts";
import { bytes, contents, data, deliverEvents, drive, putEvent, resetStorage, scratch, sha256Hex, storedBlobKey, target } from "./storage-support.ts";

beforeEach(async () => {
  await resetState();
  await resetStorage();
});

const backups = () => env.BACKUPS as R2Bucket;
const MARKER = "ASTRID-CONFIDENTIAL-OBSERVATION-7f3a";

/** Every object of the backup bucket: key, bytes, custom metadata. */
async function everything(): Promise<{ key: string; body: Uint8Array; custom: Record<string, string> }[]> {
  const out = [];
  let cursor: string | undefined;
  do {
    const page = await backups().list({ limit: 1000, cursor, include: ["customMetadata"] });
    for (const o of page.objects) {
      out.push({ key: o.key, body: new Uint8Array(await (await backups().get(o.key))!.arrayBuffer()), custom: o.customMetadata ?? {} });
    }
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  return out;
}

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

/** What an attacker knows of each object and looks for: a slice of its bytes, its key's name, its SHA-256. */
async function lookFor(objects: Record<string, Uint8Array>): Promise<{ what: string; needle: Uint8Array }[]> {
  const enc = new TextEncoder();
  const out = [];
  for (const [key, body] of Object.entries(objects)) {
    out.push({ what: `bytes of ${key}`, needle: body.subarray(0, 32) });
    out.push({ what: `bytes of ${key} (middle)`, needle: body.subarray(Math.floor(body.length / 2), Math.floor(body.length / 2) + 32) });
    out.push({ what: `key ${key}`, needle: enc.encode(key.split("/").at(-1)!) });
    out.push({ what: `sha256 of ${key}`, needle: enc.encode(await sha256Hex(body)) });
  }
  out.push({ what: "custom metadata value", needle: enc.encode(MARKER) });
  return out;
}

async function expectNoPlaintext(objects: Record<string, Uint8Array>) {
  const needles = await lookFor(objects);
  const stored = await everything();
  expect(stored.length).toBeGreaterThanOrEqual(Object.keys(objects).length);
  for (const o of stored) {
    for (const { what, needle } of needles) {
      expect(contains(o.body, needle), `${o.key} holds the ${what}`).toBe(false);
      expect(contains(new TextEncoder().encode(o.key + JSON.stringify(o.custom)), needle), `${o.key}'s name or metadata holds the ${what}`).toBe(false);
    }
  }
  return stored;
}

const SMALL_PAGES = { STORAGE_PAGE_SIZE: "3" };
const MULTIPART = { ...SMALL_PAGES, STORAGE_MULTIPART_THRESHOLD_BYTES: String(5 * 1024 * 1024), STORAGE_PART_SIZE_BYTES: String(5 * 1024 * 1024) };

async function snapshot(vars: Record<string, unknown> = SMALL_PAGES, bucket = "astrid-data") {
  const res = await api("POST", "/backup/storage", { body: { bucket }, env: vars });
  expect(res.status, res.text).toBe(202);
  const driven = await drive(res.body.jobs[0].job_id, vars);
  expect(driven.job.status, driven.job.error_message ?? "").toBe("succeeded");
  return { snapshot_id: res.body.jobs[0].snapshot_id as string, result: JSON.parse(driven.job.result!) };
}

async function restore(snapshotId: string, body: Record<string, unknown>, vars: Record<string, unknown> = SMALL_PAGES) {
  const res = await api("POST", `/backup/storage/${snapshotId}/restore`, { body, env: vars });
  expect(res.status, res.text).toBe(202);
  return (await drive(res.body.job_id, vars)).job;
}

describe("reading the backup bucket finds no plaintext of AstrID's objects", () => {
  it("snapshot blobs and parts: no object's bytes, key or SHA-256 anywhere; restore (bucket, prefix, one object) gives identical bytes", async () => {
    const objects: Record<string, Uint8Array> = {
      "observations/2026/m31-secret-field.fits": bytes(40_000, 1),
      "observations/2026/streamed-large.fits": bytes(2 * 1024 * 1024 + 7, 2), // above 1 MiB: the streaming path
      "observations/2026/multipart-survey.tar": bytes(11 * 1024 * 1024 + 5, 3), // above the threshold below: multipart
      "notes/plain-text-notes.txt": new TextEncoder().encode(`${MARKER} ${"the quick brown fox ".repeat(100)}`),
    };
    for (const [key, body] of Object.entries(objects)) await data().put(key, body, { customMetadata: { observer: MARKER } });
    const { snapshot_id } = await snapshot(MULTIPART);

    const stored = await expectNoPlaintext(objects);
    // Blobs are age files at addresses that are not the content's SHA-256.
    const blobs = stored.filter((o) => o.key.startsWith("storage/blobs/"));
    expect(blobs).toHaveLength(4);
    for (const b of blobs) expect(new TextDecoder().decode(b.body.subarray(0, 22))).toBe("age-encryption.org/v1\n");
    for (const body of Object.values(objects)) expect(await backups().head(blobKey(await sha256Hex(body)))).toBeNull();

    // The whole snapshot, a prefix, one object: identical bytes and metadata.
    expect((await restore(snapshot_id, { target_bucket: "restore-target" }, MULTIPART)).status).toBe("succeeded");
    const expected = Object.fromEntries(await Promise.all(Object.entries(objects).map(async ([k, b]) => [k, await sha256Hex(b)] as const)));
    expect(await contents(target())).toEqual(expected);
    expect((await target().head("notes/plain-text-notes.txt"))!.customMetadata).toEqual({ observer: MARKER });
    expect((await restore(snapshot_id, { target_bucket: "astrid-scratch", prefix: "notes/" })).status).toBe("succeeded");
    expect(await contents(scratch())).toEqual({ "notes/plain-text-notes.txt": expected["notes/plain-text-notes.txt"] });
    await data().delete("observations/2026/m31-secret-field.fits");
    expect((await restore(snapshot_id, { key: "observations/2026/m31-secret-field.fits" })).status).toBe("succeeded");
    expect(await sha256Hex(await (await data().get("observations/2026/m31-secret-field.fits"))!.arrayBuffer())).toBe(expected["observations/2026/m31-secret-field.fits"]);
  }, 60_000);

  it("the version store's captured bytes too; an as-of restore gives them back", async () => {
    expect((await api("POST", "/storage/versioning", { body: { bucket: "astrid-scratch" } })).status).toBe(200);
    const objects = { "runs/secret-run-log.txt": new TextEncoder().encode(`${MARKER} loss=0.123 accuracy=0.987 `.repeat(20)) };
    const put = await scratch().put("runs/secret-run-log.txt", objects["runs/secret-run-log.txt"]);
    await deliverEvents([putEvent("astrid-scratch", put!)]);
    await new Promise((r) => setTimeout(r, 5));
    const asOf = new Date().toISOString();
    await scratch().put("runs/secret-run-log.txt", "overwritten");
    await expectNoPlaintext(objects);
    expect(await backups().head(await storedBlobKey(await sha256Hex(objects["runs/secret-run-log.txt"])))).not.toBeNull();
    const res = await api("POST", "/storage/restore", { body: { bucket: "astrid-scratch", as_of: asOf, target_bucket: "restore-target" } });
    const job = (await drive(res.body.job_id)).job;
    expect(job.status, job.error_message ?? "").toBe("succeeded");
    expect(await contents(target())).toEqual({ "runs/secret-run-log.txt": await sha256Hex(objects["runs/secret-run-log.txt"]) });
  });

  it("a restore with an identity that does not match fails at once (decrypt_failed) and writes nothing", async () => {
    await data().put("a.fits", bytes(5000, 4));
    const { snapshot_id } = await snapshot();
    const wrong = { ...SMALL_PAGES, AGE_IDENTITY: await generateX25519Identity() };
    const job = await restore(snapshot_id, { target_bucket: "restore-target" }, wrong);
    expect(job).toMatchObject({ status: "failed", error_code: "decrypt_failed" });
    expect(await contents(target())).toEqual({});
  });
});

describe("format 1 (plaintext) snapshots", () => {
  /** A snapshot as the Worker wrote it before format 2: plaintext blob named by its SHA-256, entries in the clear. */
  async function plantFormat1(snapshotId: string, key: string, body: Uint8Array) {
    const sha = await sha256Hex(body);
    await backups().put(blobKey(sha), body, { sha256: sha });
    const obj = (await data().put(key, body))!;
    const part = { snapshot_id: snapshotId, part: 1, entries: [{ key, size: body.length, etag: obj.etag, sha256: sha, uploaded: obj.uploaded.toISOString(), meta: { http: {}, custom: {}, storage_class: "Standard" } }] };
    const at = new Date(Date.now() - 3_600_000).toISOString();
    const manifest: SnapshotManifest = {
      format: "astrid-backup/storage-snapshot", format_version: 1, snapshot_id: snapshotId, bucket: "astrid-data", prefix: "",
      created_at: at, finished_at: at, parts: 1, stats: { objects: 1, bytes: body.length, copied_objects: 1, copied_bytes: body.length },
    };
    for (const [k, v] of [[snapshotPartKey(snapshotId, 1), part], [snapshotManifestKey(snapshotId), manifest]] as const) {
      const text = new TextEncoder().encode(JSON.stringify(v));
      await backups().put(k, text, { customMetadata: await macMetadata(env as never, text) });
    }
    await openStorageCatalog(env.CATALOG).insertSnapshot({
      id: snapshotId, bucket: "astrid-data", prefix: "", parent_id: null, status: "completed", manifest_key: snapshotManifestKey(snapshotId),
      ...manifest.stats, job_id: null, created_at: at, finished_at: at, duration_ms: 0,
    });
    return sha;
  }

  it("stay restorable with identical bytes; the next snapshot encrypts the object anew instead of referencing the plaintext blob", async () => {
    const body = bytes(30_000, 8);
    const oldId = "st-astrid-data-20261101T030000Z-old001";
    const sha = await plantFormat1(oldId, "legacy/frame.fits", body);
    expect((await restore(oldId, { target_bucket: "restore-target" })).status).toBe("succeeded");
    expect(await sha256Hex(await (await target().get("legacy/frame.fits"))!.arrayBuffer())).toBe(sha);

    const next = await snapshot();
    expect(next.result).toMatchObject({ parent_id: oldId, objects: 1, copied_objects: 1 });
    expect(SnapshotManifest.parse(await (await backups().get(snapshotManifestKey(next.snapshot_id)))!.json()).format_version).toBe(2);
    expect(await backups().head(await storedBlobKey(sha))).not.toBeNull();
    const part = (await (await backups().get(snapshotPartKey(next.snapshot_id, 1)))!.json()) as Record<string, unknown>;
    expect(Object.keys(part).sort()).toEqual(["blobs", "entries_age", "part", "snapshot_id"]);
    await target().delete("legacy/frame.fits");
    // The plaintext blob is gone (as GC would remove it once nothing old references it): the new snapshot does not need it.
    await backups().delete(blobKey(sha));
    expect((await restore(next.snapshot_id, { target_bucket: "restore-target" })).status).toBe("succeeded");
    expect(await sha256Hex(await (await target().get("legacy/frame.fits"))!.arrayBuffer())).toBe(sha);
  });
});

describe("key rotation (BACKUP_ENCRYPTION_KEY changes)", () => {
  it("the next snapshot re-encrypts every blob it references: the retired identity can no longer read them", async () => {
    await data().put("obs/a.fits", bytes(20_000, 11));
    await data().put("obs/b.fits", bytes(1_500_000, 12)); // the streaming path
    await snapshot();
    const retired = String(env.AGE_IDENTITY);
    const fresh = await generateX25519Identity();
    const rotated = { ...SMALL_PAGES, BACKUP_ENCRYPTION_KEY: await identityToRecipient(fresh), AGE_IDENTITY: `${fresh},${retired}` };
    const after = await snapshot(rotated);
    expect(after.result).toMatchObject({ objects: 2, copied_objects: 2 }); // nothing reused from the old recipients
    for (const body of [bytes(20_000, 11), bytes(1_500_000, 12)]) {
      const sealed = new Uint8Array(await (await backups().get(await storedBlobKey(await sha256Hex(body))))!.arrayBuffer());
      const old = new Decrypter();
      old.addIdentity(retired);
      await expect(old.decrypt(sealed)).rejects.toThrow(/no identity matched/);
      const now = new Decrypter();
      now.addIdentity(fresh);
      expect(await sha256Hex(await now.decrypt(sealed))).toBe(await sha256Hex(body));
    }
    // The entries of the new snapshot's parts are the new recipients' too.
    const part = (await (await backups().get(snapshotPartKey(after.snapshot_id, 1)))!.json()) as { entries_age: string };
    const entries = Uint8Array.from(atob(part.entries_age), (c) => c.charCodeAt(0));
    const old = new Decrypter();
    old.addIdentity(retired);
    await expect(old.decrypt(entries)).rejects.toThrow(/no identity matched/);
    // And a third snapshot with the same key reuses again.
    expect((await snapshot(rotated)).result).toMatchObject({ objects: 2, copied_objects: 0 });
    expect((await restore(after.snapshot_id, { target_bucket: "restore-target" }, rotated)).status).toBe("succeeded");
    expect(Object.keys(await contents(target())).sort()).toEqual(["obs/a.fits", "obs/b.fits"]);
  }, 60_000);
});

it("a Worker without AGE_IDENTITY still takes snapshots: it cannot open the parent's parts, and reuses blobs by address", async () => {
  await data().put("obs/n.fits", bytes(12_000, 31));
  await snapshot();
  const noIdentity = { ...SMALL_PAGES, AGE_IDENTITY: "" };
  expect((await snapshot(noIdentity)).result).toMatchObject({ objects: 1, copied_objects: 0 });
});

describe("CHUNK_ID_KEY changes", () => {
  it("cost deduplication only: snapshots and captured versions from before still restore, and GC keeps their blobs", async () => {
    await data().put("obs/s.fits", bytes(9_000, 21));
    const { snapshot_id } = await snapshot();
    expect((await api("POST", "/storage/versioning", { body: { bucket: "astrid-scratch" } })).status).toBe(200);
    const put = await scratch().put("runs/v.txt", bytes(7_000, 22));
    await deliverEvents([putEvent("astrid-scratch", put!)]);
    await new Promise((r) => setTimeout(r, 5));
    const asOf = new Date().toISOString();
    await scratch().delete("runs/v.txt");

    const newKey = { ...SMALL_PAGES, CHUNK_ID_KEY: "22".repeat(32), GC_GRACE_MINUTES: "0" };
    const gc = await drive((await api("POST", "/storage/gc", { body: { grace_minutes: 0 }, env: newKey })).body.job_id, newKey);
    expect(JSON.parse(gc.job.result!)).toMatchObject({ deleted: 0 });
    expect((await restore(snapshot_id, { target_bucket: "restore-target" }, newKey)).status).toBe("succeeded");
    const res = await api("POST", "/storage/restore", { body: { bucket: "astrid-scratch", as_of: asOf, target_bucket: "restore-target" }, env: newKey });
    const job = (await drive(res.body.job_id, newKey)).job;
    expect(job.status, job.error_message ?? "").toBe("succeeded");
    expect(await contents(target())).toEqual({ "obs/s.fits": await sha256Hex(bytes(9_000, 21)), "runs/v.txt": await sha256Hex(bytes(7_000, 22)) });
  });
});

// The shared helper the tests above decrypt with must itself be right: a blob is a standard age file.
it("the test identity pair is real (encrypt to BACKUP_ENCRYPTION_KEY, decrypt with AGE_IDENTITY)", async () => {
  const e = new Encrypter();
  e.addRecipient(String(env.BACKUP_ENCRYPTION_KEY));
  const d = new Decrypter();
  d.addIdentity(String(env.AGE_IDENTITY));
  expect(new TextDecoder().decode(await d.decrypt(await e.encrypt("x")))).toBe("x");
});
