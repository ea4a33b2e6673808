// Issue #12, restore target hosts, the runner's side: the Worker checks the
// host as written, but cannot resolve names, so a name that resolves to a
// link-local, metadata or (by policy) loopback address passed. The runner
// now resolves right before connecting, checks every address, and connects
// to the address it checked (libpq `hostaddr`; MLflow over a fixed lookup),
// so no second lookup (DNS rebinding) can send the connection elsewhere.
// Resolution sits behind one narrow interface (Resolver): tests give answers
// a public DNS would give an attacker's name, and also resolve `localhost`
// for real. No internet is needed.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { checkedAddress, pinnedFetch, pinnedPostgresUrl, systemResolver, type Resolver } from "../../runner/target-address.ts";
import { psql } from "../../runner/database/pg-tools.ts";
import { testPg } from "../support/fixture.ts";
import type { TargetPolicy } from "../../workers/shared/target-policy.ts";

const DEFAULT: TargetPolicy = { allow: [], refuse_loopback: false };
const NO_LOOPBACK: TargetPolicy = { allow: [], refuse_loopback: true };

/** What an attacker's DNS answers: a name of theirs pointing wherever they like. */
const answers = (table: Record<string, string[]>): Resolver => ({
  async resolve(host) {
    const a = table[host];
    if (!a) throw new Error(`getaddrinfo ENOTFOUND ${host}`);
    return a;
  },
});

const refused = async (p: Promise<unknown>) => {
  const e = (await p.then(() => undefined, (err) => err)) as { code?: string; message?: string } | undefined;
  expect(e, "expected a refusal").toBeDefined();
  return e!;
};

describe("the resolver interface and the policy on resolved addresses", () => {
  it("a name resolving to the metadata address (or any link-local one, IPv4-mapped too) is refused; so is a mix", async () => {
    const dns = answers({
      "169.254.169.254.attacker.example": ["169.254.169.254"],
      "mixed.attacker.example": ["192.0.2.10", "169.254.10.1"],
      "v6.attacker.example": ["fe80::1"],
      "mapped.attacker.example": ["::ffff:169.254.169.254"],
      "alibaba.attacker.example": ["100.100.100.200"],
    });
    for (const host of ["169.254.169.254.attacker.example", "mixed.attacker.example", "v6.attacker.example", "mapped.attacker.example", "alibaba.attacker.example"]) {
      const e = await refused(checkedAddress(host, DEFAULT, dns));
      expect(e.code, host).toBe("target_refused");
      expect(e.message).toMatch(/link-local|metadata/);
    }
  });

  it("an ordinary name gives its first address; an unresolvable one is target_unreachable; a literal address is not looked up", async () => {
    const dns = answers({ "db.example.org": ["192.0.2.10", "192.0.2.11"] });
    expect(await checkedAddress("db.example.org", DEFAULT, dns)).toBe("192.0.2.10");
    expect((await refused(checkedAddress("nowhere.example.org", DEFAULT, dns))).code).toBe("target_unreachable");
    expect(await checkedAddress("192.0.2.99", DEFAULT, answers({}))).toBe("192.0.2.99");
    expect((await refused(checkedAddress("169.254.169.254", DEFAULT, answers({})))).code).toBe("target_refused");
  });

  it("RESTORE_TARGET_HOSTS: a listed name is the operator's word (resolved, not checked); an unlisted one is refused", async () => {
    const dns = answers({ "db.internal.example": ["169.254.1.2"], "other.example": ["192.0.2.1"] });
    const policy = { allow: [".internal.example"], refuse_loopback: true };
    expect(await checkedAddress("db.internal.example", policy, dns)).toBe("169.254.1.2");
    expect((await refused(checkedAddress("other.example", policy, dns))).code).toBe("target_refused");
  });

  it("a real resolution of localhost is refused when loopback is refused by policy, and allowed (pinned to loopback) when not", async () => {
    const addresses = await systemResolver.resolve("localhost");
    expect(addresses.length).toBeGreaterThan(0);
    expect(addresses.every((a) => a === "::1" || a.startsWith("127."))).toBe(true);
    const e = await refused(checkedAddress("localhost", NO_LOOPBACK));
    expect(e.code).toBe("target_refused");
    expect(e.message).toMatch(/loopback/);
    expect(addresses).toContain(await checkedAddress("localhost", DEFAULT));
  });
});

describe("the connection goes to the checked address, never through a second lookup", () => {
  it("PostgreSQL: libpq connects to hostaddr; the name itself never resolves (a rebinding DNS would have no say)", async () => {
    const pg = testPg();
    // "db.rebind.invalid" does not exist in any DNS: only the checked address can be what psql connects to.
    const url = pg.url("postgres").replace(`//${pg.user}@${pg.host}:`, `//${pg.user}@db.rebind.invalid:`);
    expect(url).toContain("db.rebind.invalid");
    await expect(psql(url, "SELECT 1")).rejects.toThrow();
    const pinned = await pinnedPostgresUrl(url, DEFAULT, answers({ "db.rebind.invalid": [pg.host] }));
    expect(new URL(pinned).searchParams.get("hostaddr")).toBe(pg.host);
    expect((await psql(pinned, "SELECT 41 + 1")).trim()).toBe("42");
    // The same name answering the metadata address is refused before any connection.
    expect((await refused(pinnedPostgresUrl(url, DEFAULT, answers({ "db.rebind.invalid": ["169.254.169.254"] })))).code).toBe("target_refused");
    // A configured target (no policy in the dispatch) is the config's own: left as it is.
    expect(await pinnedPostgresUrl(url, undefined)).toBe(url);
  });

  it("MLflow: requests connect to the checked address, the URL's host stays in the Host header", async () => {
    const seen: string[] = [];
    const server = http.createServer(async (req, res) => {
      let body = "";
      for await (const part of req) body += part;
      // With its length, as fetch would send it (MLflow does not read a chunked body).
      seen.push(`${req.method} ${req.headers.host} ${req.url} ${req.headers["content-length"]} ${body}`);
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ ok: true }));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const port = (server.address() as AddressInfo).port;
      const f = pinnedFetch("127.0.0.1");
      const res = await f(`http://mlflow.rebind.invalid:${port}/api/2.0/mlflow/experiments/create`, { method: "POST", body: '{"name":"é"}', headers: { "content-type": "application/json" } });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ ok: true });
      expect(seen).toEqual([`POST mlflow.rebind.invalid:${port} /api/2.0/mlflow/experiments/create 13 {"name":"é"}`]);
    } finally {
      server.close();
    }
  });
});

describe("an MLflow restore target's answers are not echoed to viewers (job errors)", () => {
  it("a server that is not MLflow (400, 500, 200 with HTML) is reported by status and size only; MLflow's own errors keep their message", async () => {
    const { MlflowClient } = await import("../../runner/ml/mlflow-client.ts");
    const SECRET = "internal-service-secret-9f2c";
    const answers: [number, string, string][] = [
      [400, "text/plain", `denied: ${SECRET}`],
      [502, "text/html", `<html>${SECRET}</html>`],
      [200, "text/html", `<html><body>${SECRET}</body></html>`],
      [400, "application/json", JSON.stringify({ error_code: "INVALID_PARAMETER_VALUE", message: "Missing value for required parameter 'name'." })],
    ];
    let next = 0;
    const server = http.createServer((_req, res) => {
      const [status, type, body] = answers[next]!;
      res.writeHead(status, { "content-type": type });
      res.end(body);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const client = new MlflowClient({ tracking_uri: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
      const messages: string[] = [];
      for (next = 0; next < answers.length; next++) {
        const e = (await client.post("experiments/create", { name: "x" }).then(() => undefined, (err) => err)) as { code: string; message: string };
        expect(e, `answer ${next}`).toBeDefined();
        messages.push(`${e.code}: ${e.message}`);
      }
      for (const m of messages) expect(m).not.toContain(SECRET);
      expect(messages[0]).toMatch(/^mlflow_request_failed: .*HTTP 400.*not an MLflow error answer/);
      expect(messages[1]).toMatch(/^mlflow_server_error: .*HTTP 502$/);
      expect(messages[2]).toMatch(/^mlflow_not_mlflow: /);
      expect(messages[3]).toContain("Missing value for required parameter 'name'.");
    } finally {
      server.close();
    }
  }, 30_000);
});
