// A stopped local stack's persisted state, read with one Miniflare (the
// library `wrangler dev` and wrangler's `--local` CLI run on): the backup
// bucket copied out to a directory under its keys, and catalog queries. The
// break-glass tests then fetch objects with `cp` from that copy instead of
// starting wrangler's CLI once per object (seconds each).
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { convertV4MiniflareOptions, Miniflare } from "miniflare";

export interface LocalState {
  /** Copies every object of the bucket to DIR/<key>; returns how many. */
  copyBucket(dir: string, bucket?: string): Promise<number>;
  /** Rows of a query on the catalog (D1). */
  catalog<T>(sql: string, ...params: unknown[]): Promise<T[]>;
  dispose(): Promise<void>;
}

/** Opens the state a stack persisted to `persistDir`: the stack must be stopped (two processes must never share it). */
export async function openLocalState(persistDir: string): Promise<LocalState> {
  // As wrangler's own `r2 object get --local` and `d1 execute --local` open it.
  const mf = new Miniflare(convertV4MiniflareOptions({
    modules: true, script: "export default {}", resourcePersistencePath: join(persistDir, "v3"),
    r2Buckets: { BACKUPS: "astrid-backups" },
    d1Databases: { CATALOG: "00000000-0000-0000-0000-000000000000" }, // wrangler.toml's database_id names the local catalog
  }));
  return {
    async copyBucket(dir) {
      const bucket = await mf.getR2Bucket("BACKUPS");
      let copied = 0;
      let cursor: string | undefined;
      do {
        const page = await bucket.list({ limit: 1000, ...(cursor ? { cursor } : {}) });
        for (const { key } of page.objects) {
          const object = await bucket.get(key);
          if (!object) continue;
          const file = join(dir, key);
          mkdirSync(dirname(file), { recursive: true });
          writeFileSync(file, new Uint8Array(await object.arrayBuffer()));
          copied++;
        }
        cursor = page.truncated ? page.cursor : undefined;
      } while (cursor);
      return copied;
    },
    async catalog<T>(sql: string, ...params: unknown[]) {
      const d1 = await mf.getD1Database("CATALOG");
      return (await d1.prepare(sql).bind(...params).all()).results as T[];
    },
    dispose: () => mf.dispose(),
  };
}
