// File order for a test run: vitest's own (slowest first, failed first),
// except that the files needing a pinned Python tool (MLflow, schemathesis)
// go last. On a clean clone global-setup.ts installs those in the background,
// and the other files run while it does instead of waiting for it.
import { readFileSync } from "node:fs";
import { BaseSequencer, type TestSpecification } from "vitest/node";

const NEEDS_PYTHON_TOOL = /\b(startMlflow|ensureMlflow|ensureSchemathesis)\(/;

export class PythonToolsLastSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const needs = new Set(sorted.filter((f) => NEEDS_PYTHON_TOOL.test(readFileSync(f.moduleId, "utf8"))));
    return [...sorted.filter((f) => !needs.has(f)), ...sorted.filter((f) => needs.has(f))];
  }
}
