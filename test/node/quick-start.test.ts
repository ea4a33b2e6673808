// The README's quick start as a new user meets it: `npm start` with their
// own .dev.vars holding only DATABASE_URL adds the local secrets it lacks
// (and says so), serves the API, and a SIGTERM (what a process manager
// sends) stops the whole stack: Worker and runner alike.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ROOT, freePort } from "../../runner/dev/stack.ts";
import { parseVars } from "../../runner/dev/secrets.ts";
import { createDatabase, dropDatabase, scratchName, testPg } from "../support/fixture.ts";

const pg = testPg();
const home = mkdtempSync(join(tmpdir(), "astrid-home-"));
const database = scratchName("quickstart");

afterAll(async () => {
  await dropDatabase(pg, database).catch(() => {});
  rmSync(home, { recursive: true, force: true });
});

async function answers(url: string): Promise<boolean> {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(2000) })).ok;
  } catch {
    return false;
  }
}

describe("npm start", () => {
  it("adds missing local secrets to a user's .dev.vars, serves the API, and stops whole on SIGTERM", async () => {
    await createDatabase(pg, database);
    writeFileSync(join(home, ".dev.vars"), `DATABASE_URL="${pg.url(database)}"\n`);
    const [port, runnerPort] = [await freePort(), await freePort()];
    const child = spawn("npm", ["start"], {
      cwd: ROOT, env: { ...process.env, ASTRID_HOME: home, PORT: String(port), RUNNER_PORT: String(runnerPort) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    const deadline = Date.now() + 120_000;
    while (!output.includes("is running locally")) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`npm start did not come up:\n${output.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    const vars = parseVars(readFileSync(join(home, ".dev.vars"), "utf8"));
    expect(vars.DATABASE_URL).toBe(pg.url(database));
    for (const k of ["ADMIN_TOKEN", "VIEWER_TOKEN", "RUNNER_TOKEN", "JOB_TOKEN_SECRET", "CHUNK_ID_KEY", "AGE_IDENTITY", "BACKUP_ENCRYPTION_KEY"]) {
      expect(vars[k], k).toBeTruthy();
    }
    expect(output).toMatch(/added the missing local secrets ADMIN_TOKEN, .*RUNNER_TOKEN/);
    expect(output).toContain(join(home, ".wrangler/astrid/state"));
    const listed = await fetch(`http://127.0.0.1:${port}/backup/database`, { headers: { authorization: `Bearer ${vars.ADMIN_TOKEN}` } });
    expect(listed.status).toBe(200);
    expect(await answers(`http://127.0.0.1:${runnerPort}/health`)).toBe(true);

    child.kill("SIGTERM");
    await exited;
    expect(await answers(`http://127.0.0.1:${port}/health`)).toBe(false);
    expect(await answers(`http://127.0.0.1:${runnerPort}/health`)).toBe(false);
  }, 180_000);
});
