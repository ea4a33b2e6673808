// Issue #12, Cloudflare Access: with CF_ACCESS_TEAM_DOMAIN and CF_ACCESS_AUD
// set, every admin API request must carry a Cf-Access-Jwt-Assertion that
// verifies against the team's keys (RS256, audience, issuer, expiry), and the
// audit log names the person from the verified token, never from the
// spoofable cf-access-authenticated-user-email header. The team's key set is
// fetched through one narrow interface (AccessKeys); here a stand-in holds a
// key pair made in the test.
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { base64url } from "../../workers/crypto.ts";
import { api, auditRows, resetState } from "./helpers.ts";

beforeEach(resetState);

const TEAM = "astrid.cloudflareaccess.com";
const AUD = "a1b2c3d4e5f6-audience-tag";
let keyPair: CryptoKeyPair;
let otherPair: CryptoKeyPair;
let jwk: JsonWebKey & { kid: string };

const rsa = () => crypto.subtle.generateKey({ name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" }, true, ["sign", "verify"]) as Promise<CryptoKeyPair>;

beforeAll(async () => {
  keyPair = await rsa();
  otherPair = await rsa();
  jwk = { ...((await crypto.subtle.exportKey("jwk", keyPair.publicKey)) as JsonWebKey), kid: "key-1" };
});

async function jwt(claims: Record<string, unknown>, signer = keyPair.privateKey, kid = "key-1"): Promise<string> {
  const enc = (o: unknown) => base64url(new TextEncoder().encode(JSON.stringify(o)));
  const input = `${enc({ alg: "RS256", kid, typ: "JWT" })}.${enc(claims)}`;
  const sig = await crypto.subtle.sign("RSASSA-PKCS1-v1_5", signer, new TextEncoder().encode(input));
  return `${input}.${base64url(new Uint8Array(sig))}`;
}

const now = () => Math.floor(Date.now() / 1000);
const good = () => ({ aud: [AUD], iss: `https://${TEAM}`, email: "ops@astrid.example", exp: now() + 300, iat: now() - 5, nbf: now() - 5 });
const accessEnv = () => ({ CF_ACCESS_TEAM_DOMAIN: TEAM, CF_ACCESS_AUD: AUD, ACCESS_KEYS: { keys: async () => [jwk] } });

describe("Cloudflare Access", () => {
  it("a valid assertion is accepted and the audit names the person from it, not from the header", async () => {
    const res = await api("POST", "/backup/database", {
      body: {}, env: accessEnv(), headers: { "cf-access-jwt-assertion": await jwt(good()), "cf-access-authenticated-user-email": "mallory@evil.example" },
    });
    expect(res.status, res.text).toBe(202);
    const entry = (await auditRows()).find((a) => a.outcome === "accepted");
    expect(entry!.actor).toMatch(/^admin:[0-9a-f]{8}:ops@astrid\.example$/);
  });

  it("no assertion, a forged, expired, other-audience or other-issuer one: 401 access_denied, audited", async () => {
    const cases: [string, Record<string, string>][] = [
      ["missing", {}],
      ["garbage", { "cf-access-jwt-assertion": "a.b.c" }],
      ["other key", { "cf-access-jwt-assertion": await jwt(good(), otherPair.privateKey) }],
      ["unknown kid", { "cf-access-jwt-assertion": await jwt(good(), keyPair.privateKey, "key-9") }],
      ["expired", { "cf-access-jwt-assertion": await jwt({ ...good(), exp: now() - 10 }) }],
      ["not yet", { "cf-access-jwt-assertion": await jwt({ ...good(), nbf: now() + 600 }) }],
      ["audience", { "cf-access-jwt-assertion": await jwt({ ...good(), aud: ["someone-else"] }) }],
      ["issuer", { "cf-access-jwt-assertion": await jwt({ ...good(), iss: "https://evil.cloudflareaccess.com" }) }],
    ];
    for (const [what, headers] of cases) {
      const res = await api("GET", "/backup/database", { env: accessEnv(), headers });
      expect(res.status, `${what}: ${res.text}`).toBe(401);
      expect(res.body.error.code, what).toBe("access_denied");
    }
    expect((await auditRows()).filter((a) => a.outcome === "denied")).toHaveLength(cases.length);
  });

  it("without Access configured, the email header is not trusted for the audit", async () => {
    await api("POST", "/backup/database", { body: {}, headers: { "cf-access-authenticated-user-email": "mallory@evil.example" } });
    expect(JSON.stringify(await auditRows())).not.toContain("mallory");
  });
});
