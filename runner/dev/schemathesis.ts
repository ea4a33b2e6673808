// Schemathesis (PyPI), the property-based API fuzzer that test/node/fuzz
// runs against the OpenAPI document the Worker serves. Pinned: its checks
// and options are what the fuzz test's verdict depends on.
import { join } from "node:path";
import { ensurePipVenv } from "./venv.ts";

export const SCHEMATHESIS_VERSION = "4.32.5";

/** The `st` CLI's path, installing it on first use. */
export async function ensureSchemathesis(): Promise<string> {
  return join(await ensurePipVenv("schemathesis", SCHEMATHESIS_VERSION, `schemathesis==${SCHEMATHESIS_VERSION}`), "st");
}
