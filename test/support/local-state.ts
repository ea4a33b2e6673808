// A stopped local stack's persisted state, opened with Miniflare as wrangler's
// own `--local` commands open it: the backup bucket's listing and catalog
// queries, for tests that check what an operator without the Worker would see,
// and serveLocalBucket, the object fetch the documents' FETCH stands for.
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
  const mf = overPersistedState(persistDir, "export default {}", {
    r2Buckets: { BACKUPS: "astrid-backups" },
    d1Databases: { CATALOG: "00000000-0000-0000-0000-000000000000" }, // wrangler.toml's database_id names the local catalog
  });
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

/**
 * The documents' FETCH for a local stack's bucket: one Miniflare instance over
 * the stack's persisted state (the same store `wrangler r2 object get --local`
 * opens) serves GET /<key>, and FETCH is a curl of it, as a user's rclone or
 * aws s3 cp would be. One server per script run rather than one wrangler CLI
 * start per object: that start cost seconds of CPU for every object fetched.
 * Each key fetched is appended to $FETCH_LOG.
 */
export async function serveLocalBucket(persistDir: string, fetchLog: string, bucket = "astrid-backups"): Promise<{ env: Record<string, string>; close(): Promise<void> }> {
  const mf = overPersistedState(persistDir, `export default {
      async fetch(request, env) {
        if (request.method !== "GET") return new Response(null, { status: 405 });
        const object = await env.BUCKET.get(decodeURIComponent(new URL(request.url).pathname.slice(1)));
        return object ? new Response(object.body) : new Response("no such key", { status: 404 });
      },
    };`, { r2Buckets: { BUCKET: bucket } });
  const url = (await mf.ready).toString();
  return {
    env: { FETCH_URL: url, FETCH_LOG: fetchLog, FETCH: 'echo "$1" >> "$FETCH_LOG"; curl -sSf -o "$2" "$FETCH_URL$1"' },
    close: () => mf.dispose(),
  };
}

/** A Miniflare over a stack's persisted state, opened as wrangler's own `r2 object get --local` and `d1 execute --local` open it. */
function overPersistedState(persistDir: string, script: string, bindings: { r2Buckets?: Record<string, string>; d1Databases?: Record<string, string> }): Miniflare {
  return new Miniflare(convertV4MiniflareOptions({ modules: true, script, resourcePersistencePath: join(persistDir, "v3"), ...bindings }));
}
