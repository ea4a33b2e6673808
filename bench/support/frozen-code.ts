// Benchmarks run a frozen copy of the code: wrangler dev watches its sources,
// so an edit to the working tree during a long run would restart the Worker
// mid-phase (and drop every open request).
import { cpSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, type startStack as StartStack } from "../../runner/dev/stack.ts";

export interface FrozenCode {
  root: string;
  startStack: typeof StartStack;
  dispose(): void;
}

/** Copies what the stack runs into a temporary directory (node_modules linked); `patch` may edit the copy first. */
export async function freezeCode(patch: (root: string) => void = () => {}): Promise<FrozenCode> {
  const root = mkdtempSync(join(tmpdir(), "astrid-bench-code-"));
  // docs/runbook.md: the console's build (workers/console/ui/build.ts) serves it.
  for (const entry of ["runner", "workers", "migrations", "bench/support", "docs/runbook.md", "wrangler.toml", "package.json", "tsconfig.json"]) {
    cpSync(join(ROOT, entry), join(root, entry), { recursive: true });
  }
  symlinkSync(join(ROOT, "node_modules"), join(root, "node_modules"), "dir");
  patch(root);
  const { startStack } = (await import(join(root, "runner/dev/stack.ts"))) as { startStack: typeof StartStack };
  return { root, startStack, dispose: () => rmSync(root, { recursive: true, force: true }) };
}
