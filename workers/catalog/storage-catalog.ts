// Catalog access for storage: snapshots, the version store, bucket
// protection settings and the replication log. Like catalog.ts, an index that
// the manifests and blobs in R2 back; the version store is the exception (its
// rows are the history) and is what the storage part of docs/format.md describes.
import { and, asc, desc, eq, gt, gte, inArray, lte, sql } from "drizzle-orm";
import { drizzle, type DrizzleD1Database } from "drizzle-orm/d1";
import { bucketProtection, objectVersions, replicationLog, storageSnapshots, type ObjectVersionRow } from "./schema.ts";

export type StorageCatalog = ReturnType<typeof openStorageCatalog>;
type Db = DrizzleD1Database;

export function openStorageCatalog(d1: D1Database) {
  const db = drizzle(d1);
  return {
    /** True if the row was added, false if that snapshot was listed already. */
    insertSnapshot: async (row: typeof storageSnapshots.$inferInsert) =>
      (await db.insert(storageSnapshots).values(row).onConflictDoNothing().returning({ id: storageSnapshots.id }).all()).length > 0,
    getSnapshot: (id: string) => db.select().from(storageSnapshots).where(eq(storageSnapshots.id, id)).get(),
    /** The newest snapshot of the same bucket and prefix: the next one references its unchanged objects. */
    latestSnapshot: (bucket: string, prefix: string) =>
      db.select().from(storageSnapshots).where(and(eq(storageSnapshots.bucket, bucket), eq(storageSnapshots.prefix, prefix)))
        .orderBy(desc(storageSnapshots.created_at)).limit(1).get(),
    listSnapshots: (f: { bucket?: string; limit: number; before?: string }) =>
      db.select().from(storageSnapshots)
        .where(and(f.bucket ? eq(storageSnapshots.bucket, f.bucket) : undefined, f.before ? sql`${storageSnapshots.id} < ${f.before}` : undefined))
        .orderBy(desc(storageSnapshots.created_at), desc(storageSnapshots.id)).limit(f.limit).all(),
    /** Snapshots created before the cutoff, except the newest of each bucket and prefix. */
    expiredSnapshots: (cutoff: string) =>
      db.select({ id: storageSnapshots.id, finished_at: storageSnapshots.finished_at }).from(storageSnapshots).where(and(
        sql`${storageSnapshots.created_at} < ${cutoff}`,
        sql`${storageSnapshots.id} <> (SELECT n.id FROM storage_snapshots AS n WHERE n.bucket = ${storageSnapshots.bucket}
          AND n.prefix = ${storageSnapshots.prefix} ORDER BY n.created_at DESC LIMIT 1)`,
      )).all(),
    /** Buckets with rows in the version store. */
    versionedBuckets: async () =>
      (await d1.prepare("SELECT DISTINCT bucket FROM object_versions ORDER BY bucket").all<{ bucket: string }>()).results.map((r) => r.bucket),
    /**
     * Versions of a bucket superseded (by a newer version or a delete of the
     * key) before `before`, with when: candidates for expiry. A key's newest
     * row is never among them.
     */
    supersededVersions: async (bucket: string, before: string, afterId: number, limit: number) =>
      (await d1.prepare(`SELECT id, key, superseded_at FROM (
          SELECT v.id, v.key, (SELECT min(n.event_time) FROM object_versions AS n WHERE n.bucket = v.bucket AND n.key = v.key
            AND (n.event_time > v.event_time OR (n.event_time = v.event_time AND n.id > v.id))) AS superseded_at
          FROM object_versions AS v WHERE v.bucket = ?1 AND v.id > ?2)
        WHERE superseded_at < ?3 ORDER BY id LIMIT ?4`).bind(bucket, afterId, before, limit)
        .all<{ id: number; key: string; superseded_at: string }>()).results,
    deleteVersions: (ids: number[]) => db.delete(objectVersions).where(inArray(objectVersions.id, ids)).run(),
    /** Distinct blob hashes the version store references, a page at a time (garbage collection marks them). */
    /** A page of distinct version hashes after `after`, and every blob address recorded for them (format 2, in meta). */
    versionBlobs: (after: string, limit: number) =>
      d1.prepare(
        `SELECT DISTINCT sha256, json_extract(meta, '$.blob') AS blob FROM object_versions
         WHERE sha256 IN (SELECT DISTINCT sha256 FROM object_versions WHERE sha256 > ? ORDER BY sha256 LIMIT ?) ORDER BY sha256`,
      ).bind(after, limit).all<{ sha256: string; blob: string | null }>()
        .then((r) => ({
          hashes: [...new Set(r.results.map((x) => x.sha256))],
          blobs: r.results.map((x) => x.blob).filter((b): b is string => typeof b === "string"),
        })),
    deleteSnapshot: (id: string) => db.delete(storageSnapshots).where(eq(storageSnapshots.id, id)).run(),

    protection: (bucket: string) => db.select().from(bucketProtection).where(eq(bucketProtection.bucket, bucket)).get(),
    protections: () => db.select().from(bucketProtection).all(),
    enableVersioning: (bucket: string, now: Date) =>
      db.insert(bucketProtection).values({ bucket, versioning_since: now.toISOString() })
        .onConflictDoUpdate({ target: bucketProtection.bucket, set: { versioning_since: sql`coalesce(${bucketProtection.versioning_since}, ${now.toISOString()})` } })
        .returning().get(),
    enableReplication: (bucket: string, replica: string, now: Date) =>
      db.insert(bucketProtection).values({ bucket, replica_bucket: replica, replication_since: now.toISOString() })
        .onConflictDoUpdate({ target: bucketProtection.bucket, set: { replica_bucket: replica, replication_since: now.toISOString() } })
        .returning().get(),
    /** Stops replicating a bucket (the replica keeps what it has); returns what it was replicating to. */
    disableReplication: async (bucket: string) => {
      const row = await db.select().from(bucketProtection).where(eq(bucketProtection.bucket, bucket)).get();
      if (!row?.replica_bucket) return undefined;
      await db.update(bucketProtection).set({ replica_bucket: null, replication_since: null }).where(eq(bucketProtection.bucket, bucket)).run();
      return { replica: row.replica_bucket };
    },
    recordReconciliation: (bucket: string, at: Date, drift: number) =>
      db.insert(bucketProtection).values({ bucket, last_reconciled_at: at.toISOString(), last_drift: drift })
        .onConflictDoUpdate({ target: bucketProtection.bucket, set: { last_reconciled_at: at.toISOString(), last_drift: drift } }).run(),

    /** True if this version was new; a redelivered event finds it already there. */
    insertVersion: async (row: typeof objectVersions.$inferInsert) =>
      (await db.insert(objectVersions).values(row).onConflictDoNothing().returning({ id: objectVersions.id }).all()).length > 0,
    listVersions: (bucket: string, key: string) =>
      db.select().from(objectVersions).where(and(eq(objectVersions.bucket, bucket), eq(objectVersions.key, key)))
        .orderBy(desc(objectVersions.event_time), desc(objectVersions.id)).all(),
    latestVersions: (q: LatestVersionsQuery) => latestVersions(db, q),

    logReplication: (row: typeof replicationLog.$inferInsert) => db.insert(replicationLog).values(row).run(),
    replicationLags: (bucket: string, since: Date) =>
      db.select({ lag_ms: replicationLog.lag_ms, applied_at: replicationLog.applied_at }).from(replicationLog)
        .where(and(eq(replicationLog.bucket, bucket), gte(replicationLog.applied_at, since.toISOString())))
        .orderBy(asc(replicationLog.lag_ms)).all(),
  };
}

export interface LatestVersionsQuery {
  bucket: string;
  /** Keys strictly after this one (paging); "" for the first page. */
  after: string;
  /** Keys up to and including this one; omit for no upper bound. */
  through?: string;
  prefix: string;
  /** The state as of this time (ISO); omit for the newest. */
  asOf?: string;
  limit: number;
}

/** For each key in range, its newest version (as of asOf): the bucket's state as the version store knows it. */
async function latestVersions(db: Db, q: LatestVersionsQuery): Promise<ObjectVersionRow[]> {
  const asOf = q.asOf ?? "9999";
  const newest = sql`${objectVersions.id} = (SELECT w.id FROM object_versions AS w WHERE w.bucket = ${objectVersions.bucket}
    AND w.key = ${objectVersions.key} AND w.event_time <= ${asOf} ORDER BY w.event_time DESC, w.id DESC LIMIT 1)`;
  return db.select().from(objectVersions).where(and(
    eq(objectVersions.bucket, q.bucket), gt(objectVersions.key, q.after),
    q.through === undefined ? undefined : lte(objectVersions.key, q.through),
    q.prefix ? sql`substr(${objectVersions.key}, 1, length(${q.prefix})) = ${q.prefix}` : undefined,
    newest,
  )).orderBy(asc(objectVersions.key)).limit(q.limit).all();
}
