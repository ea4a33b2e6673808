// docs/format.md promises that a backup can be restored without this project,
// with age, zstd, jq, coreutils (sha256sum, dd) and pg_restore. This test takes
// a full and then an incremental backup through the real local stack (so the
// incremental's chunks sit in two packs, one of them shared with the full),
// stops the stack, fetches the manifest and packs with wrangler's own CLI and
// runs the two scripts printed in docs/format.md (extracted from the document
// itself, so they cannot drift apart), then compares the restored database
// with its source.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appendObservations, seedAstronomyDatabase, updateObservations } from "../../runner/dev/astronomy-seed.ts";
import { tableFingerprints } from "../../runner/dev/compare.ts";
import { psql } from "../../runner/dev/postgres.ts";
import { createDatabase, dropDatabase, scratchName, startTestStack, testPg, type TestStack } from "../support/fixture.ts";
import { run, scriptFromDoc, succeeded } from "../support/doc-scripts.ts";
import { serveLocalBucket } from "../support/local-state.ts";
import { manifestMac } from "../../workers/shared/format.ts";

const MiB = 1024 * 1024;

/** The tools the document tells a restorer to use, and the Debian package of each. */
const TOOLS: [tool: string, pkg: string][] = [
  ["age", "age"],
  ["zstd", "zstd"],
  ["jq", "jq"],
  ["sha256sum", "coreutils"],
  ["dd", "coreutils"],
  ["pg_restore", "postgresql-client"],
];

function requireTools(): void {
  const missing = TOOLS.filter(([tool]) => spawnSync("bash", ["-c", `command -v ${tool}`], { stdio: "ignore" }).status !== 0);
  if (missing.length > 0) {
    const pkgs = missing.map(([, pkg]) => pkg).join(" ");
    throw new Error(
      `manual restore needs ${missing.map(([t, p]) => `'${t}' (Debian package ${p})`).join(", ")}, not found on PATH: ` +
        `install with  apt-get install -y ${pkgs}`,
    );
  }
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

describe("manual restore with stock tools (docs/format.md)", () => {
  const pg = testPg();
  const databases: string[] = [];
  let stack: TestStack | undefined;
  let stopped = false;
  let work: string;
  let sourceUrl: string;
  let fullId: string;
  let backupId: string;
  let manifestPath: string;
  let manifest: any;
  let fullManifest: any;
  let fetchScript: string;
  let restoreScript: string;
  let identityFile: string;
  let fetchLog: string;
  let bucket: Awaited<ReturnType<typeof serveLocalBucket>> | undefined;
  const objects = () => join(work, "objects");
  const packKey = (m: any, pack: string) => `${m.pack_prefix}${pack.slice(0, 2)}/${pack}`;
  const distinctPacks = (m: any): string[] => [...new Set<string>(m.chunks.map((c: any) => c.pack))].sort();
  const fetched = (): string[] => (existsSync(fetchLog) ? readFileSync(fetchLog, "utf8").split("\n").filter(Boolean) : []);

  async function scratchDatabase(label: string): Promise<string> {
    const name = scratchName(label);
    databases.push(name);
    return createDatabase(pg, name);
  }

  async function backup(type: "full" | "incremental"): Promise<string> {
    const submitted = await stack!.api("POST", "/backup/database", { type });
    expect(submitted.status).toBe(202);
    const job = await stack!.waitForJob(submitted.body.job_id);
    if (job.status !== "succeeded") throw new Error(`${type} backup job ${job.status}: ${JSON.stringify(job)}`);
    return submitted.body.backup_id;
  }

  /** Step 1 of the document: fetch-backup.sh, with FETCH reading the local bucket; every fetched key is logged. */
  async function fetchBackup(id: string): Promise<string> {
    const r = succeeded(`fetch-backup.sh ${id}`, await run("bash", [fetchScript, id, objects()], {
      env: bucket!.env,
    }));
    return r.stdout.trim();
  }

  beforeAll(async () => {
    requireTools();
    work = mkdtempSync(join(tmpdir(), "astrid-manual-restore-"));
    fetchScript = join(work, "fetch-backup.sh");
    restoreScript = join(work, "manual-restore.sh");
    fetchLog = join(work, "fetched.log");
    writeFileSync(fetchScript, scriptFromDoc("fetch-backup.sh"), { mode: 0o755 });
    writeFileSync(restoreScript, scriptFromDoc("manual-restore.sh"), { mode: 0o755 });

    sourceUrl = await scratchDatabase("mr_src");
    await seedAstronomyDatabase(sourceUrl, { targetBytes: 10 * MiB });

    stack = await startTestStack({ vars: { DATABASE_URL: sourceUrl } });
    fullId = await backup("full");
    await appendObservations(sourceUrl, 0.01);
    await updateObservations(sourceUrl, 0.01, "newest");
    backupId = await backup("incremental");
    // The bucket server opens the same local persistence as `wrangler dev`: stop the stack so they never share it.
    await stack.stop();
    stopped = true;
    bucket = await serveLocalBucket(stack.persistDir, fetchLog);

    manifestPath = await fetchBackup(backupId);
    expect(manifestPath).toBe(join(objects(), `manifests/database/${backupId}.json`));
    manifest = JSON.parse(readFileSync(manifestPath, "utf8"));

    identityFile = join(work, "identity.txt");
    writeFileSync(identityFile, `${stack.secrets.AGE_IDENTITY.split(",").join("\n")}\n`, { mode: 0o600 });
  }, 300_000);

  afterAll(async () => {
    await bucket?.close();
    for (const name of databases) await dropDatabase(pg, name).catch(() => {});
    // dispose() would stop() a second time, which never returns once the runner
    // has died of a signal (runner/dev/stack.ts waits for an exit event that
    // already fired); the stack is stopped, so only its directory is left.
    if (stack && !stopped) await stack.dispose();
    else if (stack) rmSync(stack.dir, { recursive: true, force: true });
    if (work) rmSync(work, { recursive: true, force: true });
  }, 60_000);

  it("fetches the manifest and each distinct pack once; a second run and an earlier backup sharing the packs fetch no pack again", async () => {
    const packs = distinctPacks(manifest);
    // Two packs: the full backup's (unchanged chunks) and the incremental's own (changed ones).
    expect(packs.length).toBeGreaterThan(1);
    expect(fetched()).toEqual([`manifests/database/${backupId}.json`, ...packs.map((p) => packKey(manifest, p))]);

    expect(await fetchBackup(backupId)).toBe(manifestPath);
    const fullPath = await fetchBackup(fullId);
    fullManifest = JSON.parse(readFileSync(fullPath, "utf8"));
    expect(fetched().slice(1 + packs.length)).toEqual([`manifests/database/${fullId}.json`]);
    expect(distinctPacks(fullManifest).every((p) => packs.includes(p))).toBe(true);
  });

  it("stores format 1: chunk files at pack offsets, packs named by their SHA-256 and made of nothing but chunk files", () => {
    expect(manifest).toMatchObject({
      format: "astrid-backup/database", format_version: 1, backup_id: backupId, type: "incremental", database: "astrid",
      pack_prefix: "packs/", compression: { algorithm: "zstd" },
      encryption: { scheme: "age-x25519", recipients: [stack!.secrets.BACKUP_ENCRYPTION_KEY] },
      dump: { format: "custom", pg_dump_args: ["--format=custom", "--compress=0", "--no-password"] },
    });
    expect(manifest.chunks.length).toBeGreaterThan(1);
    expect(manifest.chunks.reduce((s: number, c: any) => s + c.plain_size, 0)).toBe(manifest.dump.logical_bytes);
    expect(manifest.stats.new_stored_bytes).toBeLessThan(manifest.stats.stored_bytes * 0.5);

    const files = new Map<string, Map<number, number>>(); // pack -> offset -> stored_size, over both manifests
    for (const m of [manifest, fullManifest]) {
      for (const c of m.chunks) {
        const pack = readFileSync(join(objects(), packKey(m, c.pack)));
        const file = pack.subarray(c.offset, c.offset + c.stored_size);
        expect(file.length).toBe(c.stored_size);
        expect(sha256(file)).toBe(c.stored_sha256);
        expect(file.subarray(0, 22).toString("latin1")).toBe("age-encryption.org/v1\n");
        if (!files.has(c.pack)) files.set(c.pack, new Map());
        files.get(c.pack)!.set(c.offset, c.stored_size);
      }
    }
    // Each pack was written by one of the two backups, all of whose new chunks it lists: together they tile every pack.
    for (const [pack, offsets] of files) {
      const bytes = readFileSync(join(objects(), packKey(manifest, pack)));
      expect(sha256(bytes)).toBe(pack);
      let end = 0;
      for (const [offset, size] of [...offsets].sort((a, b) => a[0] - b[0])) {
        expect(offset).toBe(end);
        end += size;
      }
      expect(end).toBe(bytes.length);
    }
  });

  it("restores with the document's script into a database equal to the source", async () => {
    const targetUrl = await scratchDatabase("mr_dst");
    const dumpFile = join(work, `${backupId}.dump`);
    const started = Date.now();
    succeeded("manual-restore.sh", await run("bash", [restoreScript, manifestPath, objects(), identityFile, targetUrl], {
      cwd: work, env: { DUMP_FILE: dumpFile },
    }));
    console.log(`manual restore of ${manifest.chunks.length} chunks in ${distinctPacks(manifest).length} packs, ${manifest.dump.logical_bytes} bytes: ${Date.now() - started} ms`);

    const sha = succeeded("sha256sum", await run("sha256sum", [dumpFile])).stdout.split(" ")[0];
    expect(sha).toBe(manifest.dump.sha256);
    expect(readFileSync(dumpFile).subarray(0, 5).toString("latin1")).toBe("PGDMP");

    const [source, restored] = await Promise.all([tableFingerprints(sourceUrl), tableFingerprints(targetUrl)]);
    expect(Object.keys(source).length).toBeGreaterThan(5);
    expect(restored).toEqual(source);
  });

  it("check-manifest-mac.sh, as printed, accepts the MAC the Worker stores and refuses a changed manifest or another key", async () => {
    const script = join(work, "check-manifest-mac.sh");
    writeFileSync(script, scriptFromDoc("check-manifest-mac.sh"), { mode: 0o755 });
    const key = stack!.secrets.MANIFEST_MAC_KEY;
    // The Worker's own MAC function (what PUT /repo/v1 stores as astrid-mac) over the fetched bytes.
    const mac = await manifestMac(key, readFileSync(manifestPath));
    expect(mac).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
    const ok = succeeded("check-manifest-mac.sh", await run("bash", [script, manifestPath, mac], { env: { MANIFEST_MAC_KEY: key } }));
    expect(ok.stdout).toContain("MAC ok");

    const changed = join(work, "changed.json");
    writeFileSync(changed, JSON.stringify({ ...manifest, chunks: manifest.chunks.slice(1) }));
    const refused = await run("bash", [script, changed, mac], { env: { MANIFEST_MAC_KEY: key } });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("MAC does not match");
    expect((await run("bash", [script, manifestPath, mac], { env: { MANIFEST_MAC_KEY: "some other key" } })).code).not.toBe(0);
  });

  it("refuses damaged chunks, a wrong identity and unknown format versions before touching the target", async () => {
    const targetUrl = await scratchDatabase("mr_bad");
    const attempt = async (label: string, dir: string, manifestFile: string, identity = identityFile) => {
      const r = await run("bash", [restoreScript, manifestFile, dir, identity, targetUrl], {
        cwd: work, env: { DUMP_FILE: join(work, `${label}.dump`) },
      });
      expect(r.code, label).not.toBe(0);
      return r.stderr;
    };
    const count = manifest.chunks.length;

    // One flipped byte inside the last chunk's file, in the middle of its pack: caught by
    // stored_sha256, with no key involved; the other chunks of that pack still pass.
    const damaged = join(work, "damaged");
    cpSync(objects(), damaged, { recursive: true });
    const last = manifest.chunks[count - 1];
    const first = manifest.chunks.findIndex((c: any) => c.pack === last.pack && c.offset === last.offset) + 1;
    const victim = join(damaged, packKey(manifest, last.pack));
    const bytes = readFileSync(victim);
    bytes[last.offset + last.stored_size - 100]! ^= 0x01;
    writeFileSync(victim, bytes);
    expect(manifest.chunks.slice(0, first - 1).some((c: any) => c.pack === last.pack)).toBe(true);
    expect(await attempt("damaged", damaged, manifestPath)).toMatch(new RegExp(`chunk ${first}/${count} \\(.*\\): does not match its stored_sha256`));

    // fetch-backup.sh, fetching from the damaged copy, sees that the pack no longer hashes to its name.
    const refetch = await run("bash", [fetchScript, backupId, join(work, "refetched")], {
      env: { SOURCE: damaged, FETCH: 'cp "$SOURCE/$1" "$2"' },
    });
    expect(refetch.code).not.toBe(0);
    expect(refetch.stderr).toContain(`${packKey(manifest, last.pack)} does not match its name`);
    expect(refetch.stdout).toBe("");

    // The same flip with the manifest's hash updated to match: age's authentication catches it.
    const forged = join(work, "forged.json");
    const forgedSha = sha256(bytes.subarray(last.offset, last.offset + last.stored_size));
    writeFileSync(forged, JSON.stringify({
      ...manifest,
      chunks: manifest.chunks.map((c: any) => (c.pack === last.pack && c.offset === last.offset ? { ...c, stored_sha256: forgedSha } : c)),
    }));
    expect(await attempt("forged", damaged, forged)).toMatch(new RegExp(`chunk ${first}/${count} \\(.*\\): does not decrypt or decompress`));

    // Another identity cannot open the chunks.
    const other = join(work, "other-identity.txt");
    succeeded("age-keygen", await run("age-keygen", ["-o", other]));
    expect(await attempt("identity", objects(), manifestPath, other)).toMatch(/chunk 1\/\d+ \(.*\): does not decrypt/);

    // A future version is refused outright.
    const future = join(work, "future.json");
    writeFileSync(future, JSON.stringify({ ...manifest, format_version: 2 }));
    expect(await attempt("future", objects(), future)).toMatch(/format_version 2 is not supported/);

    // Chunks in the wrong order pass every per-chunk check but not dump.sha256.
    const reordered = join(work, "reordered.json");
    writeFileSync(reordered, JSON.stringify({ ...manifest, chunks: [...manifest.chunks].reverse() }));
    expect(await attempt("reordered", objects(), reordered)).toMatch(/does not match dump\.sha256/);

    // None of these reached pg_restore: the target is still empty.
    const relations = await psql(targetUrl, "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'");
    expect(relations.trim()).toBe("0");
    expect(readdirSync(work).filter((f) => /\.(slice|age|partial|chunks)$/.test(f))).toEqual([]);
  });
});
