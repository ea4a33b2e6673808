/// <reference types="vite/client" />
// The job-kind registry (workers/kinds.ts, runner/kinds.ts) walked as a
// whole: every kind is complete on both sides, every scheduled task runs at a
// schedule that wrangler.toml triggers, and kinds are unique.
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import wranglerToml from "../../wrangler.toml?raw";
import { configuredSchedules, loadConfig } from "../../workers/config.ts";
import { kinds } from "../../workers/kinds.ts";
import { JobKindName } from "../../workers/shared/protocol.ts";
import { KindRegistry, runnerKind } from "../../workers/jobs/kind.ts";
import { databaseBackup } from "../../workers/database/kinds.ts";

// The runner's table is Node code; its keys are read from the source so this Worker test can compare.
const runnerSource = import.meta.glob("../../runner/kinds.ts", { query: "?raw", import: "default", eager: true }) as Record<string, string>;
const runnerKinds = [...Object.values(runnerSource)[0]!.matchAll(/^\s+"([a-z_]+\.[a-z_]+)": handler\(/gm)].map((m) => m[1]!);

const crons = [...wranglerToml.split("[triggers]")[1]!.split("]")[0]!.matchAll(/"([^"]+)"/g)].map((m) => m[1]!);

describe("the job-kind registry", () => {
  it("names every kind <capability>.<verb>, with a parameter schema", () => {
    for (const k of kinds.all()) {
      expect(JobKindName.safeParse(k.kind).success, k.kind).toBe(true);
      expect(typeof k.params.safeParse, k.kind).toBe("function");
    }
  });

  it("gives every runner kind a dispatch, a result schema and a handler on the runner, and the runner no kind the Worker lacks", () => {
    const runner = kinds.all().filter((k) => k.runs === "runner");
    expect(runner.length).toBeGreaterThan(0);
    for (const k of runner) {
      if (k.runs !== "runner") continue;
      expect(typeof k.dispatch, k.kind).toBe("function");
      expect(typeof k.result.safeParse, k.kind).toBe("function");
      expect(runnerKinds, `runner/kinds.ts handles ${k.kind}`).toContain(k.kind);
    }
    expect([...runnerKinds].sort()).toEqual(runner.map((k) => k.kind).sort());
  });

  it("gives every Worker-run kind a step", () => {
    for (const k of kinds.all()) if (k.runs === "worker") expect(typeof k.step, k.kind).toBe("function");
  });

  it("has a verifier for every backup domain", () => {
    for (const domain of ["database", "ml", "training_data"]) expect(kinds.verifierFor(domain), domain).toBeDefined();
  });

  it("runs every scheduled task at a schedule setting that wrangler.toml triggers", () => {
    for (const config of [loadConfig(env), loadConfig({ ...env, DATABASE_BACKUP_SCHEDULE: "0 1 * * *", STORAGE_BACKUP_SCHEDULE: "30 3 * * *" })]) {
      const settings = configuredSchedules(config);
      for (const t of kinds.tasks) expect(settings, t.name).toContain(t.cron(config));
    }
    for (const t of kinds.tasks) expect(crons, t.name).toContain(t.cron(loadConfig(env)));
  });

  it("refuses a kind declared twice", () => {
    const again = runnerKind({ ...databaseBackup, params: databaseBackup.params, result: databaseBackup.result });
    expect(() => new KindRegistry([databaseBackup, again], [])).toThrow(/declared twice/);
  });
});
