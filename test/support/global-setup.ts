// Node project setup: a PostgreSQL to test against (the machine's, or a
// throwaway cluster started from the installed binaries), shared by all
// files; and the pinned Python tools (MLflow for the ML tests, schemathesis
// for the fuzz test) installed in the background. On a clean clone those
// installs take minutes: the files that need neither run meanwhile (the
// sequencer, test/support/sequencer.ts, puts the files that do last), and
// those that do wait for the install in ensureMlflow()/ensureSchemathesis().
import type { TestProject } from "vitest/node";
import { ensurePostgres, type PgServer } from "../../runner/dev/postgres.ts";
import { ensureMlflow } from "../../runner/dev/mlflow.ts";
import { ensureSchemathesis } from "../../runner/dev/schemathesis.ts";

let server: PgServer | undefined;

export default async function setup(project: TestProject) {
  server = await ensurePostgres();
  // A failed install is reported by the test that needs the tool (its own ensure call retries and throws).
  const installs = Promise.allSettled([ensureMlflow(), ensureSchemathesis()]);
  project.provide("pgAdminUrl", server.url("postgres"));
  return async () => {
    await installs;
    await server?.stop();
  };
}

declare module "vitest" {
  export interface ProvidedContext {
    pgAdminUrl: string;
  }
}
