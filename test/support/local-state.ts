// A stopped local stack's persisted state, read with one Miniflare (the
// library `wrangler dev` and wrangler's `--local` CLI run on): the backup
// bucket's listing and catalog queries, for tests that check what an operator
// without the Worker would see. Objects themselves are fetched through
// serveLocalBucket (doc-scripts.ts), as the documents' FETCH does.
import { join } from "node:path";
import { convertV4MiniflareOptions, Miniflare } from "miniflare";

export interface LocalState {
  /** Keys of the backup bucket under a prefix, in listing order. */
  list(prefix: string): Promise<string[]>;
  /** Rows of a query on the catalog (D1). */
  catalog<T>(sql: string, ...params: unknown[]): Promise<T[]>;
  dispose(): Promise<void>;
}

/** Opens the state a stack persisted to `persistDir`: the stack must be stopped, and nothing else may have it open. */
export async function openLocalState(persistDir: string): Promise<LocalState> {
  // As wrangler's own `r2 object get --local` and `d1 execute --local` open it.
  const mf = new Miniflare(convertV4MiniflareOptions({
    modules: true, script: "export default {}", resourcePersistencePath: join(persistDir, "v3"),
    r2Buckets: { BACKUPS: "astrid-backups" },
    d1Databases: { CATALOG: "00000000-0000-0000-0000-000000000000" }, // wrangler.toml's database_id names the local catalog
  }));
  return {
    async list(prefix) {
      const bucket = await mf.getR2Bucket("BACKUPS");
      const keys: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await bucket.list({ prefix, limit: 1000, ...(cursor ? { cursor } : {}) });
        keys.push(...page.objects.map((o) => o.key));
        cursor = page.truncated ? page.cursor : undefined;
      } while (cursor);
      return keys;
    },
    async catalog<T>(sql: string, ...params: unknown[]) {
      const d1 = await mf.getD1Database("CATALOG");
      return (await d1.prepare(sql).bind(...params).all()).results as T[];
    },
    dispose: () => mf.dispose(),
  };
}
