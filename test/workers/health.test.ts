import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { api } from "./helpers.ts";

describe("GET /health", () => {
  it("answers without a token and says the config and catalog are fine", async () => {
    const res = await SELF.fetch("https://backup.test/health");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok" });
  });

  it("answers 503 catalog_unavailable when D1 cannot be queried", async () => {
    const broken = { prepare: () => ({ first: async () => { throw new Error("D1_ERROR: no such database"); } }) };
    const res = await api("GET", "/health", { token: null, env: { CATALOG: broken } });
    expect(res.status).toBe(503);
    expect(res.body).toMatchObject({ status: "unhealthy", error: { code: "catalog_unavailable" } });
  });
});
