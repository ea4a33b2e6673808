// The backup repository format (version 1). docs/format.md describes the
// same thing for people; this module is what code reads and writes.
//
// Layout inside the backup bucket:
//   packs/<pack[0:2]>/<pack>                      pack files of the deduplicated store, shared by all backups
//   archive/<backup_id>/packs/<pack[0:2]>/<pack>  pack files of one self-contained archive backup
//   manifests/database/<backup_id>.json           one plaintext manifest per database backup
//   manifests/ml/<backup_id>.json                 one per MLflow or training-data backup (docs/ml.md)
//
// A pack is a concatenation of chunk files; its name is the SHA-256 of its
// bytes. A chunk file is  age(zstd(plaintext))  to the manifest's
// recipients, where plaintext is one content-defined slice of the pg_dump
// stream. Chunks are small (64 KiB on average) so that a change touches
// little; packs are large (about 8 MiB) so that a gigabyte is a hundred
// objects, not sixteen thousand. The manifest says where each chunk sits.
// The chunk id is HMAC-SHA256(chunk_id_key, plaintext) in hex: equal content
// gets one id (so it is stored once) without the id telling anyone what the
// content is.
import { z } from "zod";
import { BackupType, DatabaseName } from "./protocol.ts";
export const FORMAT_VERSION = 1;

/** Content-defined chunking parameters (FastCDC with normalized chunking). */
// 64 KiB on average, chosen by measurement (bench/chunk-size.ts, 300 MiB
// astronomy database, 1% appended + 1% of the newest rows updated + 100
// scattered old rows updated): the incremental added 3.0% of the full
// backup's stored bytes at 64 KiB, 5.5% at 128 KiB, 25% at 1 MiB. Smaller
// chunks dedup better; packs (below) keep the number of objects small.
export const CHUNKER = {
  algorithm: "fastcdc-gear32-nc2",
  min_size: 16 * 1024,
  avg_size: 64 * 1024,
  max_size: 256 * 1024,
} as const;

export const ChunkId = z.string().regex(/^[0-9a-f]{64}$/);
const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);

/** A pack is closed and uploaded once it holds at least this many bytes. */
export const PACK_TARGET_SIZE = 8 * 1024 * 1024;

/** The shared, deduplicated store's packs. */
export const SHARED_PACK_PREFIX = "packs/";
/** Each archive's private store: archive/<backup_id>/packs/. */
export const ARCHIVE_PREFIX = "archive/";

/** Where a backup's packs live: the shared store, or the archive's private one. */
export function packPrefix(type: BackupType, backupId: string): string {
  return type === "archive" ? `${ARCHIVE_PREFIX}${backupId}/packs/` : SHARED_PACK_PREFIX;
}

export function packKey(prefix: string, packId: string): string {
  return `${prefix}${packId.slice(0, 2)}/${packId}`;
}

export function manifestKey(backupId: string): string {
  return `manifests/database/${backupId}.json`;
}

export const MANIFEST_PREFIX = "manifests/database/";
export const ML_MANIFEST_PREFIX = "manifests/ml/";
/** manifests/continuous/<stream_id>/<seq>.json: the segments of a database's change stream (docs/continuous.md). */
export const CONTINUOUS_MANIFEST_PREFIX = "manifests/continuous/";
/** Where the manifests of chunk-store backups live (database dumps, MLflow exports, training data, change-stream segments). */
export const CHUNK_MANIFEST_PREFIXES = [MANIFEST_PREFIX, ML_MANIFEST_PREFIX, CONTINUOUS_MANIFEST_PREFIX] as const;

export function mlManifestKey(backupId: string): string {
  return `${ML_MANIFEST_PREFIX}${backupId}.json`;
}

/** The manifest key of any backup id: the id's prefix says its domain. */
export function manifestKeyFor(backupId: string): string {
  return /^(ml|td)-/.test(backupId) ? mlManifestKey(backupId) : manifestKey(backupId);
}

/** Backup ids are sortable by time and safe in keys and URLs. */
export const BackupId = z.string().regex(/^db-[a-z0-9_]+-\d{8}T\d{6}Z-[a-z0-9]{6}$/);
/** ml-<server>-…: an MLflow backup; td-<dataset>-…: a training-data snapshot. */
export const MlBackupId = z.string().regex(/^(ml|td)-[a-z0-9_]+-\d{8}T\d{6}Z-[a-z0-9]{6}$/);

export function newBackupId(database: string, at: Date, random: string, kind: "db" | "ml" | "td" = "db"): string {
  const stamp = at.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
  return `${kind}-${database}-${stamp}-${random}`;
}

/** Keys a job may touch. Anything else (.., absolute, odd characters) is refused. */
export function isRepositoryKey(key: string): boolean {
  return /^[a-z]+(\/[A-Za-z0-9_.-]+)+$/.test(key) && !key.split("/").some((p) => p === "." || p === "..");
}

export const ChunkRef = z.object({
  id: ChunkId,
  /** Bytes of plaintext this chunk contributes to the dump stream. */
  plain_size: z.number().int().positive(),
  /** The pack holding the chunk file (the pack's SHA-256), and where in it. */
  pack: Sha256Hex,
  offset: z.number().int().nonnegative(),
  /** Bytes of the chunk file, and their SHA-256: checkable without any key. */
  stored_size: z.number().int().positive(),
  stored_sha256: Sha256Hex,
});
export type ChunkRef = z.infer<typeof ChunkRef>;

/** How a manifest's chunks were cut, compressed and encrypted, and what its backup added: common to every chunk manifest. */
const ChunkStoreFields = {
  compression: z.object({ algorithm: z.literal("zstd"), level: z.number().int() }),
  encryption: z.object({ scheme: z.literal("age-x25519"), recipients: z.array(z.string()).min(1) }),
  chunker: z.object({ algorithm: z.string(), min_size: z.number().int(), avg_size: z.number().int(), max_size: z.number().int() }),
  stats: z.object({
    stored_bytes: z.number().int().nonnegative(),
    new_stored_bytes: z.number().int().nonnegative(),
    new_chunks: z.number().int().nonnegative(),
  }),
};

/**
 * What every manifest of the chunk store has, whatever its domain: enough to
 * walk all backups' chunks (garbage collection, damage reports) without
 * knowing what the chunks hold.
 */
export const ChunkStoreManifest = z.object({
  backup_id: z.string(),
  pack_prefix: z.string(),
  chunks: z.array(ChunkRef),
});
export type ChunkStoreManifest = z.infer<typeof ChunkStoreManifest>;

/**
 * A database's contents at backup time, from the same snapshot pg_dump read:
 * per relation ("schema.table", "sequence:…", "view:…", "extension:…") its row
 * count and an order-independent checksum of its rows, and the SHA-256 of its
 * normalised schema-only dump. A drill computes the same on the restored copy,
 * the way `method` names (runner/database/consistency.ts).
 */
const RecordedRows = { rows: z.number().int().nonnegative() };
const RecordCommon = { schema_sha256: Sha256Hex, duration_ms: z.number().nonnegative() };
/** Checksum methods; records without a `method` (written before there was a choice) are "row-md5-sum". */
export const CONSISTENCY_METHODS = ["row-hashtext-sum", "row-md5-sum"] as const;
export type ConsistencyMethod = (typeof CONSISTENCY_METHODS)[number];
export const ConsistencyRecord = z.union([
  z.object({
    method: z.literal("row-hashtext-sum"),
    tables: z.record(z.string(), z.object({ ...RecordedRows, checksum: z.string() })),
    ...RecordCommon,
  }),
  // The first records (#10): md5 per row, and no method field.
  z.object({
    tables: z.record(z.string(), z.object({ ...RecordedRows, md5: z.string() })),
    ...RecordCommon,
  }),
]);
export type ConsistencyRecord = z.infer<typeof ConsistencyRecord>;

export const DatabaseManifest = z.object({
  format: z.literal("astrid-backup/database"),
  format_version: z.literal(FORMAT_VERSION),
  backup_id: BackupId,
  type: BackupType,
  database: DatabaseName,
  created_at: z.string(),
  finished_at: z.string(),
  source: z.object({
    /** The database's own name on the server; never a connection string. */
    database_name: z.string(),
    server_version: z.string(),
    pg_dump_version: z.string(),
  }),
  dump: z.object({
    format: z.literal("custom"),
    pg_dump_args: z.array(z.string()),
    logical_bytes: z.number().int().nonnegative(),
    sha256: Sha256Hex,
  }),
  ...ChunkStoreFields,
  /** Only its legal forms: "packs/" (shared store) or "archive/<this backup_id>/packs/" (an archive's own). */
  pack_prefix: z.string().regex(/^(packs\/|archive\/[A-Za-z0-9_-]+\/packs\/)$/, "pack_prefix must be packs/ or archive/<backup_id>/packs/"),
  chunks: z.array(ChunkRef),
  /** What a restore must reproduce, taken in the snapshot pg_dump read (runner/database/consistency.ts); absent in older backups. */
  consistency: ConsistencyRecord.optional(),
}).refine((m) => m.pack_prefix === packPrefix(m.type, m.backup_id), {
  path: ["pack_prefix"], message: "pack_prefix does not match the backup's type and id",
});
export type DatabaseManifest = z.infer<typeof DatabaseManifest>;

// ---- Continuous archiving: change-stream segments (docs/continuous.md, docs/format.md) ----
//
// A stream is named by its base backup's id (a database backup taken in the
// replication slot's exported snapshot). Its segments are plain SQL text, one
// BEGIN … COMMIT block per source transaction, each preceded by a header line
//   manifests/continuous/<stream_id>/<seq:08>-<job_id>.json   one segment's manifest
//   -- astrid:tx lsn=<commit LSN> commit=<commit time, ISO> xid=<xid> bytes=<block bytes>
// cut into chunks and stored like a dump (zstd + age, packs).

/**
 * A segment's manifest: its number, and the job that wrote it. Manifests are
 * write-once, and a runner that died after writing one but before the Worker
 * recorded it leaves it behind; the job that takes over writes its own
 * segment of that number under its own name (only recorded ones count).
 */
export function segmentManifestKey(streamId: string, seq: number, jobId: string): string {
  return `${CONTINUOUS_MANIFEST_PREFIX}${streamId}/${String(seq).padStart(8, "0")}-${jobId}.json`;
}

/** A PostgreSQL LSN as the server prints it: X/X in hex. */
export const Lsn = z.string().regex(/^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/);

export const SegmentManifest = z.object({
  format: z.literal("astrid-backup/continuous-segment"),
  format_version: z.literal(FORMAT_VERSION),
  /** The stream: its base backup's id. */
  backup_id: BackupId,
  database: DatabaseName,
  seq: z.number().int().nonnegative(),
  /** Commit LSNs of the first and last transaction (both equal to the start point when empty). */
  start_lsn: Lsn,
  end_lsn: Lsn,
  first_commit_at: z.string().nullable(),
  last_commit_at: z.string().nullable(),
  transactions: z.number().int().nonnegative(),
  /** Every transaction committed on the source before this time is in this segment or an earlier one. */
  covered_until: z.string(),
  /** SHA-256 over the published tables' columns and types, as the stream decoded them. */
  schema_fingerprint: Sha256Hex,
  /** Sequence values ("schema.name" -> last_value) read when the segment was cut; a replay sets them at its end. */
  sequences: z.record(z.string(), z.string()),
  payload: z.object({ format: z.literal("sql"), logical_bytes: z.number().int().nonnegative(), sha256: Sha256Hex }),
  ...ChunkStoreFields,
  pack_prefix: z.literal("packs/"),
  chunks: z.array(ChunkRef),
});
export type SegmentManifest = z.infer<typeof SegmentManifest>;

// ---- Storage snapshots and the version store (R2 buckets) ----
//
//   storage/blobs/<a[0:2]>/<a>                      one object's bytes (format 2: age-encrypted, a keyed address;
//                                                   format 1: plaintext, a = its SHA-256)
//   manifests/storage/<snapshot_id>.json            a snapshot's top manifest (written last)
//   manifests/storage/<snapshot_id>/part-<n>.json   its entries, 1 part per listing page, keys in order
//
// Content addressing means an object unchanged between snapshots, or the same
// bytes under two keys, or a version captured by the version store, is stored
// once. Format 2 (storage/sealed.ts) encrypts blobs and part entries and keys
// the addresses; snapshots written in format 1 stay restorable.

export const STORAGE_BLOB_PREFIX = "storage/blobs/";
export const STORAGE_MANIFEST_PREFIX = "manifests/storage/";

export function blobKey(sha256: string): string {
  return `${STORAGE_BLOB_PREFIX}${sha256.slice(0, 2)}/${sha256}`;
}

export function snapshotManifestKey(snapshotId: string): string {
  return `${STORAGE_MANIFEST_PREFIX}${snapshotId}.json`;
}

export function snapshotPartKey(snapshotId: string, part: number): string {
  return `${STORAGE_MANIFEST_PREFIX}${snapshotId}/part-${String(part).padStart(6, "0")}.json`;
}

/** R2 bucket names: 3-63 lower-case letters, digits and hyphens. */
export const BucketName = z.string().regex(/^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/, "bucket names are 3-63 lower-case letters, digits and -");

export const SnapshotId = z.string().regex(/^st-[a-z0-9-]+-\d{8}T\d{6}Z-[a-z0-9]{6}$/);

export function newSnapshotId(bucket: string, at: Date, random: string): string {
  const stamp = at.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
  return `st-${bucket}-${stamp}-${random}`;
}

/** Everything R2 keeps about an object besides its bytes, so a restore gives it back whole. */
export const StoredObjectMeta = z.object({
  http: z.record(z.string(), z.string()).default({}),
  custom: z.record(z.string(), z.string()).default({}),
  storage_class: z.string().default("Standard"),
});
export type StoredObjectMeta = z.infer<typeof StoredObjectMeta>;

export const SnapshotEntry = z.object({
  key: z.string(),
  size: z.number().int().nonnegative(),
  /** The source's etag at capture time (used to recognise an unchanged object next time). */
  etag: z.string(),
  sha256: Sha256Hex,
  uploaded: z.string(),
  meta: StoredObjectMeta,
});
export type SnapshotEntry = z.infer<typeof SnapshotEntry>;

/** Format 1: entries in the clear, blobs named by their SHA-256. */
export const PlainSnapshotPart = z.object({
  snapshot_id: SnapshotId,
  part: z.number().int().positive(),
  entries: z.array(SnapshotEntry),
});
export type PlainSnapshotPart = z.infer<typeof PlainSnapshotPart>;

/** Format 2: entries as base64 of an age file; `blobs[i]` is the keyed blob address of entry i. */
export const SealedSnapshotPart = z.object({
  snapshot_id: SnapshotId,
  part: z.number().int().positive(),
  blobs: z.array(z.string().regex(/^[0-9a-f]{64}$/)),
  entries_age: z.string(),
});
export type SealedSnapshotPart = z.infer<typeof SealedSnapshotPart>;

export const SnapshotPart = z.union([SealedSnapshotPart, PlainSnapshotPart]);
export type SnapshotPart = z.infer<typeof SnapshotPart>;

/** Storage snapshots: 1 = plaintext blobs and parts, 2 = age-encrypted, keyed addresses (storage/sealed.ts). */
export const STORAGE_FORMAT_VERSION = 2;

export const SnapshotManifest = z.object({
  format: z.literal("astrid-backup/storage-snapshot"),
  format_version: z.union([z.literal(1), z.literal(STORAGE_FORMAT_VERSION)]),
  snapshot_id: SnapshotId,
  bucket: BucketName,
  prefix: z.string(),
  /** The point in time: listing began here; an object is as it was when its page was read. */
  created_at: z.string(),
  finished_at: z.string(),
  parent_id: SnapshotId.optional(),
  /** Number of part files: part-000001 … part-<parts>, entries in listing order across them. */
  parts: z.number().int().nonnegative(),
  stats: z.object({
    objects: z.number().int().nonnegative(),
    bytes: z.number().int().nonnegative(),
    copied_objects: z.number().int().nonnegative(),
    copied_bytes: z.number().int().nonnegative(),
  }),
  /** Format 2: a tag of the recipients its blobs and parts are encrypted to (the next snapshot reuses them only if equal). */
  recipients_tag: z.string().optional(),
});
export type SnapshotManifest = z.infer<typeof SnapshotManifest>;

// ---- MLflow and training-data backups (docs/ml.md) ----
//
// An ML backup is a set of blobs, each a byte stream cut into chunks by the
// same chunker and stored in the same packs as database dumps (so an artifact
// unchanged since the parent backup costs no new bytes). The manifest's
// `chunks` is the one list of chunk references; a blob names its chunks by
// index into it, in stream order.
//   meta              NDJSON: the server's experiments and model registry
//   run               NDJSON: one run (header, metric history pages, inputs)
//   artifact          the bytes of one run artifact, `path` relative to the run's artifact root
//   model_artifact    the bytes of one MLflow 3 logged model's artifact, `path` relative to the model's artifact root
//   table / query     a training-data part: CSV (with header) of a table or query, `columns` its column types

export const ML_BLOB_KINDS = ["meta", "run", "artifact", "model_artifact", "table", "query", "r2_object"] as const;

export const MlBlob = z.object({
  kind: z.enum(ML_BLOB_KINDS),
  /** meta: "meta"; run: the source run id; artifact: "<run id>/<path>"; table/query: the part's name. */
  name: z.string().min(1),
  run_id: z.string().optional(),
  experiment_id: z.string().optional(),
  /** model_artifact: the source logged model id (m-…). */
  model_id: z.string().optional(),
  path: z.string().optional(),
  /** table/query: the columns as PostgreSQL described them, so a restore can create the table. Absent in older snapshots. */
  columns: z.array(z.object({ name: z.string(), type: z.string() })).optional(),
  size: z.number().int().nonnegative(),
  sha256: Sha256Hex,
  chunks: z.array(z.number().int().nonnegative()),
});
export type MlBlob = z.infer<typeof MlBlob>;

export const MlManifest = z.object({
  format: z.enum(["astrid-backup/mlflow", "astrid-backup/training-data"]),
  format_version: z.literal(FORMAT_VERSION),
  backup_id: MlBackupId,
  /** The configured MLflow server name, or the dataset id. */
  source: z.string(),
  created_at: z.string(),
  finished_at: z.string(),
  /** mlflow: what was asked for. training-data: the dataset's definition (never a secret). */
  scope: z.record(z.string(), z.unknown()),
  counts: z.record(z.string(), z.number().int().nonnegative()),
  /** SHA-256 over the sorted "<kind> <name> <sha256>" lines of all blobs: one digest for the whole snapshot. */
  digest: Sha256Hex,
  logical_bytes: z.number().int().nonnegative(),
  /** training-data: the MLflow runs whose dataset inputs name the dataset. */
  linked_runs: z.array(z.object({ run_id: z.string(), experiment_id: z.string(), dataset_digest: z.string().optional() })).optional(),
  ...ChunkStoreFields,
  pack_prefix: z.literal("packs/"),
  blobs: z.array(MlBlob),
  chunks: z.array(ChunkRef),
});
export type MlManifest = z.infer<typeof MlManifest>;

/** The snapshot digest of a list of blobs (order-independent). */
export function mlDigestInput(blobs: Pick<MlBlob, "kind" | "name" | "sha256">[]): string {
  return blobs.map((b) => `${b.kind} ${b.name} ${b.sha256}\n`).sort().join("");
}

// ---- Manifest MAC (docs/format.md, "Manifest MAC") ----

/** The R2 custom-metadata field holding a manifest's MAC. */
export const MAC_METADATA = "astrid-mac";
export const MAC_SCHEME = "hmac-sha256:";

/**
 * A manifest's MAC as stored in MAC_METADATA: HMAC-SHA256 over the manifest's
 * exact bytes, keyed by the UTF-8 bytes of MANIFEST_MAC_KEY, in hex: what
 * `openssl dgst -sha256 -hmac "$MANIFEST_MAC_KEY"` prints.
 */
export async function manifestMac(key: string, bytes: ArrayBuffer | Uint8Array): Promise<string> {
  const k = await crypto.subtle.importKey("raw", new TextEncoder().encode(key), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", k, bytes as Uint8Array<ArrayBuffer>));
  return MAC_SCHEME + [...mac].map((b) => b.toString(16).padStart(2, "0")).join("");
}
