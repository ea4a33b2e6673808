// The runner against the real PostgreSQL: each way a source can be wrong
// ends in a clear job failure with a code, quickly, and with no secret in it.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { backupDatabase } from "../../runner/database/backup.ts";
import { AppError } from "../../workers/shared/errors.ts";
import { RepositoryClient } from "../../runner/repository/client.ts";
import type { DatabaseBackupDispatch as BackupDispatch } from "../../workers/database/protocol.ts";
import { ensurePostgres, psql, type PgServer } from "../../runner/dev/postgres.ts";
import { testPg } from "../support/fixture.ts";

const pg = testPg();
// Nothing listens on the repository URL: these failures must all happen before it is touched.
const ctx = { repository: new RepositoryClient({ url: "http://127.0.0.1:1/repo/v1", token: "unused" }), progress: () => {}, onCancel: () => {} };

function dispatch(source_url: string): BackupDispatch {
  return {
    kind: "database.backup", job_id: "job-test", backup_id: "db-astrid-20260101T000000Z-aaaaaa", database: "astrid", type: "full",
    source_url, recipients: ["age1rgy76kk0pdvas8rc65nt2tfclrjrc3pjcn599g6zmtzpgzkuusls8cewrx"], chunk_id_key: "00".repeat(32),
    // Nothing listens here: these failures must all happen before the repository is touched.
    repository: { url: "http://127.0.0.1:1/repo/v1", token: "unused" },
  };
}

async function failureOf(url: string): Promise<AppError> {
  const started = Date.now();
  const error = await backupDatabase(dispatch(url), ctx).then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(AppError);
  expect(Date.now() - started).toBeLessThan(20_000); // a clear error, not a hung job
  const failure = error as AppError;
  expect(failure.message).not.toContain(url);
  expect(failure.message).not.toContain("hunter2");
  return failure;
}

describe("backup source errors", () => {
  it("an unreachable database", async () => {
    const f = await failureOf("postgres://postgres:hunter2@127.0.0.1:1/astrid");
    expect(f.code).toBe("database_unreachable");
  });

  it("a role that does not exist", async () => {
    const url = new URL(pg.url("postgres"));
    url.username = "no_such_role_astrid";
    url.password = "hunter2";
    const f = await failureOf(url.toString());
    expect(f.code).toBe("role_missing");
    expect(f.message).toContain("no_such_role_astrid");
  });

  it("a database that does not exist", async () => {
    const f = await failureOf(pg.url("no_such_database_astrid"));
    expect(f.code).toBe("database_missing");
  });

  describe("a pg_dump older than the server", () => {
    const shims = mkdtempSync(join(tmpdir(), "astrid-old-pg-dump-"));
    const path = process.env.PATH;
    afterAll(() => {
      process.env.PATH = path;
      rmSync(shims, { recursive: true, force: true });
    });

    it("is refused before dumping, naming both versions", async () => {
      // Debian ships one client major here; this stand-in answers --version as an old pg_dump would.
      writeFileSync(join(shims, "pg_dump"), '#!/bin/sh\necho "pg_dump (PostgreSQL) 12.19"\n');
      chmodSync(join(shims, "pg_dump"), 0o755);
      process.env.PATH = `${shims}:${path}`;
      const f = await failureOf(pg.url("postgres"));
      expect(f.code).toBe("pg_dump_too_old");
      expect(f.message).toMatch(/pg_dump 12\.19 cannot dump a PostgreSQL 1[5-9]/);
    });
  });
});

describe("a wrong password", () => {
  // The machine's server trusts loopback; a throwaway cluster that asks for a password shows this case for real.
  const dataDir = mkdtempSync(join(tmpdir(), "astrid-scram-"));
  let server: PgServer | undefined;
  afterAll(async () => {
    await server?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("fails as auth_failed without echoing the password", async () => {
    process.env.ASTRID_PG_FORCE_THROWAWAY = "1";
    try {
      server = await ensurePostgres({ dataDir });
    } finally {
      delete process.env.ASTRID_PG_FORCE_THROWAWAY;
    }
    await psql(server.url("postgres"), "CREATE ROLE guarded LOGIN PASSWORD 'right-password'");
    const hba = join(dataDir, "pg_hba.conf");
    writeFileSync(hba, `host all guarded 127.0.0.1/32 scram-sha-256\n${readFileSync(hba, "utf8")}`);
    await psql(server.url("postgres"), "SELECT pg_reload_conf()");

    const url = new URL(server.url("postgres"));
    url.username = "guarded";
    url.password = "hunter2";
    const f = await failureOf(url.toString());
    expect(f.code).toBe("auth_failed");
  });
});
