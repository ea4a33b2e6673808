// Test helpers for the Node project: a real local stack (wrangler dev +
// runner), API calls with the stack's tokens, and scratch databases on the
// test PostgreSQL.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inject } from "vitest";
import { createDatabase, dropDatabase, type PgServer } from "../../runner/dev/postgres.ts";
import { generateLocalSecrets, type LocalSecrets } from "../../runner/dev/secrets.ts";
import { freePort, startStack, type Stack } from "../../runner/dev/stack.ts";

export function testPg(): PgServer {
  const admin = new URL(inject("pgAdminUrl"));
  return {
    host: admin.hostname, port: Number(admin.port), user: decodeURIComponent(admin.username),
    url: (db) => Object.assign(new URL(admin), { pathname: `/${encodeURIComponent(db)}` }).toString(),
    stop: async () => {},
  };
}

/** A unique database name for one test; dropped by the returned cleanup. */
export function scratchName(label: string): string {
  return `t_${label}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
}

export interface TestStack extends Stack {
  secrets: LocalSecrets;
  dir: string;
  api<T = any>(method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: T }>;
  waitForJob(jobId: string, timeoutMs?: number): Promise<any>;
  triggerCron(cron: string): Promise<void>;
  dispose(): Promise<void>;
}

export interface TestStackOptions {
  vars?: Record<string, string>;
  runnerEnv?: Record<string, string>;
  /** Reuse an earlier stack's directory (its R2/D1 state) and secrets: a restart. */
  reuse?: { dir: string; secrets: LocalSecrets };
}

export async function startTestStack(opts: TestStackOptions = {}): Promise<TestStack> {
  const secrets = opts.reuse?.secrets ?? (await generateLocalSecrets());
  const dir = opts.reuse?.dir ?? mkdtempSync(join(tmpdir(), "astrid-test-"));
  const stack = await startStack({
    dir, workerPort: await freePort(), runnerPort: await freePort(),
    vars: { ...secrets, ...opts.vars },
    runnerEnv: { RUNNER_HEARTBEAT_MS: "500", ...opts.runnerEnv },
  });
  const api: TestStack["api"] = async (method, path, body, token = secrets.ADMIN_TOKEN) => {
    const res = await fetch(stack.workerUrl + path, {
      method, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };
  return {
    ...stack, secrets, dir, api,
    async waitForJob(jobId, timeoutMs = 120_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const { body } = await api("GET", `/jobs/${jobId}`);
        if (body.status === "succeeded" || body.status === "failed") return body;
        if (Date.now() > deadline) throw new Error(`job ${jobId} still ${body.status} after ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    async triggerCron(cron) {
      const res = await fetch(`${stack.workerUrl}/__scheduled?cron=${encodeURIComponent(cron)}`);
      if (!res.ok) throw new Error(`/__scheduled answered ${res.status}`);
    },
    async dispose() {
      await stack.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export { createDatabase, dropDatabase };
