import { SELF, env } from "cloudflare:test";
import { describe, expect, it } from "vitest";

describe("exp", () => {
  it("queue consumption", async () => {
    const res = await SELF.fetch("https://backup.test/backup/database", { method: "POST", headers: { authorization: "Bearer test-admin-token-0123456789" }, body: JSON.stringify({ type: "full" }) });
    const body: any = await res.json();
    console.log(res.status, body);
    for (let i = 0; i < 8; i++) {
      const row = await env.CATALOG.prepare("select status, attempts, error_code, error_message from jobs").all();
      console.log(i, JSON.stringify(row.results));
      await new Promise((r) => setTimeout(r, 500));
    }
    const e2 = { ...env, FOO: "x" } as any;
    console.log(Object.keys(e2), typeof e2.BACKUPS?.put);
    try {
      await env.BACKUPS.put("x", "hello", { sha256: "00".repeat(32) });
      console.log("put ok");
    } catch (e) { console.log("put err", (e as Error).message); }
  }, 20000);
});
