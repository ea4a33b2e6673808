// Issue #12, the runner's side: RUNNER_TOKEN rotation (the runner accepts
// every token of its comma-separated list and nothing else, so the Worker can
// switch to a new token without a window where dispatches are refused), and
// restore target names that are connection strings in disguise.
import { describe, expect, it } from "vitest";
import { createRunnerApp } from "../../runner/server.ts";
import { isPlainDatabaseName } from "../../runner/database/restore.ts";

const OLD = "old-runner-token-0123456789";
const NEW = "new-runner-token-0123456789";

const post = (app: ReturnType<typeof createRunnerApp>, token: string) =>
  app.fetch(new Request("http://runner.test/jobs", { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: "{}" }));

describe("runner token list", () => {
  it("accepts each listed token (the body is then checked), refuses others", async () => {
    const app = createRunnerApp(`${NEW}, ${OLD}`);
    for (const t of [NEW, OLD]) {
      const res = await post(app, t);
      expect(res.status, t).toBe(400);
      expect(((await res.json()) as any).error.code).toBe("invalid_job");
    }
    for (const t of ["someone-else-0123456789", `${NEW},${OLD}`, ""]) expect((await post(app, t)).status, t).toBe(401);
  });
});

describe("restore target names", () => {
  it("refuses names libpq would read as a connection string", () => {
    for (const bad of ["host=evil dbname=x", "dbname=x", "postgres://evil/x", "postgresql://evil/x"]) expect(isPlainDatabaseName(bad), bad).toBe(false);
    for (const ok of ["astrid", "astrid_restore", "Astrid Copy", "a-b"]) expect(isPlainDatabaseName(ok), ok).toBe(true);
  });
});

// Anyone who can write to R2 knows the (public) age recipients, so they can
// make chunk files that decrypt cleanly. With the chunk-id key the restore
// notices that a chunk is not the plaintext its id names, before pg_restore sees it.
describe("restore checks every chunk's keyed id against its plaintext", () => {
  it("a substituted chunk that decrypts cleanly and has the right size and stored hash is refused", async () => {
    const { ageKeyPair } = await import("../../runner/dev/secrets.ts");
    const { ChunkSealer, chunkId, sha256Hex } = await import("../../runner/repository/codec.ts");
    const { dumpStream } = await import("../../runner/database/plaintext.ts");
    const { createHash, randomBytes } = await import("node:crypto");
    const { identity, recipient } = await ageKeyPair();
    const idKey = randomBytes(32);
    const genuine = [Buffer.from("genuine first slice ".repeat(50)), Buffer.from("genuine second slice ".repeat(50))];
    const planted = Buffer.from("DROP TABLE everything; -- ".repeat(50)).subarray(0, genuine[1]!.length);
    const build = (slices: Buffer[]) => {
      const sealer = new ChunkSealer([recipient]);
      const files = slices.map((s) => sealer.seal(s));
      const pack = Buffer.concat(files);
      const packId = sha256Hex(pack);
      let offset = 0;
      const chunks = files.map((f, i) => {
        const ref = { id: chunkId(idKey, genuine[i]!), plain_size: slices[i]!.length, pack: packId, offset, stored_size: f.length, stored_sha256: sha256Hex(f) };
        offset += f.length;
        return ref;
      });
      return { pack, chunks };
    };
    // The attacker's pack: the second slice replaced, everything else consistent, the ids copied from the genuine manifest.
    const forged = build([genuine[0]!, planted]);
    const manifest = {
      pack_prefix: "packs/", chunks: forged.chunks,
      dump: { sha256: createHash("sha256").update(Buffer.concat([genuine[0]!, planted])).digest("hex"), logical_bytes: genuine[0]!.length + planted.length },
    } as any;
    const repo = { getRange: async (_key: string, offset: number, length: number) => forged.pack.subarray(offset, offset + length) } as any;
    const drain = async (key?: string) => {
      const out: Buffer[] = [];
      for await (const b of dumpStream(repo, manifest, [identity], () => {}, key)) out.push(b);
      return Buffer.concat(out);
    };
    // Without the key every check passes (the dump's SHA-256 was forged to match): this is the hole.
    expect((await drain()).includes(Buffer.from("DROP TABLE"))).toBe(true);
    await expect(drain(idKey.toString("hex"))).rejects.toThrow(/chunk #1 [0-9a-f]{64}: its keyed id does not match its plaintext/);

    // The same substitution in an ML backup's blob (an artifact, a run's records): refused by ML restore and full verify too.
    const { blobBytes } = await import("../../runner/ml/blobs.ts");
    const { chunkOpener } = await import("../../runner/repository/codec.ts");
    const whole = Buffer.concat([genuine[0]!, planted]);
    const mlManifest = { pack_prefix: "packs/", chunks: forged.chunks } as any;
    const blob = { kind: "artifact", name: "r1/model.pkl", size: whole.length, sha256: createHash("sha256").update(whole).digest("hex"), chunks: [0, 1] } as any;
    const drainBlob = async (key?: string) => {
      const out: Buffer[] = [];
      for await (const b of blobBytes(repo, mlManifest, blob, chunkOpener([identity], key))) out.push(b);
      return Buffer.concat(out);
    };
    expect((await drainBlob()).includes(Buffer.from("DROP TABLE"))).toBe(true);
    await expect(drainBlob(idKey.toString("hex"))).rejects.toThrow(/its keyed id does not match its plaintext/);
  });
});

describe("job errors are scrubbed generically", () => {
  it("removes URL userinfo of any scheme, every dispatch secret, and a secret URL's password raw and decoded", async () => {
    const { scrub } = await import("../../runner/failure.ts");
    const secrets = ["postgres://backup:p%40ss-w0rd@db.example/astrid", "mlflow-token-0123456789"];
    const text = [
      "GET https://alice:hunter22@mlflow.example/api failed",
      "FATAL: password authentication failed: p@ss-w0rd / p%40ss-w0rd",
      "bearer mlflow-token-0123456789 refused",
      "s3://AKIA123:secretkey@bucket/x",
    ].join("\n");
    const out = scrub(text, secrets);
    for (const leak of ["alice", "hunter22", "p@ss-w0rd", "p%40ss-w0rd", "mlflow-token-0123456789", "AKIA123", "secretkey"]) expect(out, leak).not.toContain(leak);
    expect(out).toContain("https://…@mlflow.example/api");
  });
});
