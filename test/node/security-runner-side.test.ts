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
