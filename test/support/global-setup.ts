// Node project setup: a PostgreSQL to test against (the machine's, or a
// throwaway cluster started from the installed binaries), shared by all
// files, and the pinned MLflow installed for the ML tests.
import type { TestProject } from "vitest/node";
import { ensurePostgres, type PgServer } from "../../runner/dev/postgres.ts";
import { ensureMlflow } from "../../runner/dev/mlflow.ts";

let server: PgServer | undefined;

export default async function setup(project: TestProject) {
  server = await ensurePostgres();
  // The ML tests' MLflow, pip-installed into .cache/ once (a no-op when cached).
  await ensureMlflow();
  project.provide("pgAdminUrl", server.url("postgres"));
  return async () => {
    await server?.stop();
  };
}

declare module "vitest" {
  export interface ProvidedContext {
    pgAdminUrl: string;
  }
}
