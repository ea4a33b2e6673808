// Our age writer and reader (runner/repository/age.ts) against the reference
// implementations: the age-encryption package and Debian's `age` CLI.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Decrypter, Encrypter } from "age-encryption";
import { afterAll, describe, expect, it } from "vitest";
import { AgeError, AgeOpener, AgeSealer } from "../../runner/repository/age.ts";
import { ageKeyPair } from "../../runner/dev/secrets.ts";

const dir = mkdtempSync(join(tmpdir(), "astrid-age-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Around the 64 KiB STREAM chunk boundaries, where off-by-ones live.
const SIZES = [0, 1, 65_535, 65_536, 65_537, 131_072, 200_000];

function ageCli(args: string[], input?: Buffer): Buffer {
  return execFileSync("age", args, input ? { input } : {});
}

describe("age interoperability", () => {
  it.each(SIZES)("a %i-byte file we seal opens with the package, the age CLI and our reader", async (size) => {
    const [a, b] = await Promise.all([ageKeyPair(), ageKeyPair()]);
    const plaintext = randomBytes(size);
    const sealed = new AgeSealer([a.recipient, b.recipient]).seal(plaintext);

    const decrypter = new Decrypter();
    decrypter.addIdentity(b.identity);
    expect(Buffer.from(await decrypter.decrypt(sealed)).equals(plaintext)).toBe(true);

    const identityFile = join(dir, `id-${size}`);
    writeFileSync(identityFile, `${a.identity}\n`);
    expect(ageCli(["-d", "-i", identityFile], sealed).equals(plaintext)).toBe(true);

    expect(new AgeOpener([a.identity]).open(sealed).equals(plaintext)).toBe(true);
  });

  it.each(SIZES)("a %i-byte file sealed by the package and by the age CLI opens with our reader", async (size) => {
    const key = await ageKeyPair();
    const plaintext = randomBytes(size);
    const encrypter = new Encrypter();
    encrypter.addRecipient(key.recipient);
    expect(new AgeOpener([key.identity]).open(await encrypter.encrypt(plaintext)).equals(plaintext)).toBe(true);
    expect(new AgeOpener([key.identity]).open(ageCli(["-r", key.recipient], plaintext)).equals(plaintext)).toBe(true);
  });

  it("gives each file of one sealer its own payload nonce, so equal plaintexts differ", async () => {
    const key = await ageKeyPair();
    const sealer = new AgeSealer([key.recipient]);
    const plaintext = randomBytes(1000);
    expect(sealer.seal(plaintext).equals(sealer.seal(plaintext))).toBe(false);
  });

  it("refuses a wrong identity, an altered header and an altered payload", async () => {
    const [key, stranger] = await Promise.all([ageKeyPair(), ageKeyPair()]);
    const sealed = new AgeSealer([key.recipient]).seal(randomBytes(70_000));
    expect(() => new AgeOpener([stranger.identity]).open(sealed)).toThrow(AgeError);

    const header = Buffer.from(sealed);
    header[25]! ^= 1; // inside the recipient stanza
    expect(() => new AgeOpener([key.identity]).open(header)).toThrow(AgeError);

    const payload = Buffer.from(sealed);
    payload[payload.length - 5]! ^= 1;
    expect(() => new AgeOpener([key.identity]).open(payload)).toThrow(/authenticate/);

    expect(() => new AgeOpener([key.identity]).open(sealed.subarray(0, sealed.length - 20))).toThrow(AgeError);
  });

  it("rejects recipients and identities that are not X25519 age keys", () => {
    expect(() => new AgeSealer(["age1notakey"])).toThrow();
    expect(() => new AgeSealer([])).toThrow(AgeError);
    expect(() => new AgeOpener(["AGE-SECRET-KEY-1NOTAKEY"])).toThrow();
  });
});
