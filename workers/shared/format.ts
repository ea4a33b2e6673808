// The backup repository format (version 1). docs/format.md describes the
// same thing for people; this module is what code reads and writes.
//
// Layout inside the backup bucket:
//   chunks/<id[0:2]>/<id>                      deduplicated chunks, shared by all backups
//   archive/<backup_id>/chunks/<id[0:2]>/<id>  chunks of one self-contained archive backup
//   manifests/database/<backup_id>.json        one plaintext manifest per backup
//
// A chunk object is  age(zstd(plaintext))  to the manifest's recipients, where
// plaintext is one content-defined slice of the pg_dump stream. The chunk id is
// HMAC-SHA256(chunk_id_key, plaintext) in hex: equal content gets one id (so it
// is stored once) without the id telling anyone what the content is.
import { z } from "zod";
import { BackupType, DatabaseName } from "./protocol.ts";

export const FORMAT_VERSION = 1;

/** Content-defined chunking parameters (FastCDC with normalized chunking). */
// 64 KiB on average, chosen by measurement (bench/chunk-size.ts, 300 MiB
// astronomy database, 1% appended + 1% of the newest rows updated + 100
// scattered old rows updated): the incremental added 3.0% of the full
// backup's stored bytes at 64 KiB, 5.5% at 128 KiB, 25% at 1 MiB. Smaller
// chunks dedup better but mean more objects and requests per backup.
export const CHUNKER = {
  algorithm: "fastcdc-gear32-nc2",
  min_size: 16 * 1024,
  avg_size: 64 * 1024,
  max_size: 256 * 1024,
} as const;

export const ChunkId = z.string().regex(/^[0-9a-f]{64}$/);
const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);

/** Where a backup's chunks live: shared store, or the archive's private one. */
export function chunkPrefix(type: BackupType, backupId: string): string {
  return type === "archive" ? `archive/${backupId}/chunks/` : "chunks/";
}

export function chunkKey(prefix: string, id: string): string {
  return `${prefix}${id.slice(0, 2)}/${id}`;
}

export function manifestKey(backupId: string): string {
  return `manifests/database/${backupId}.json`;
}

export const MANIFEST_PREFIX = "manifests/database/";

/** Backup ids are sortable by time and safe in keys and URLs. */
export const BackupId = z.string().regex(/^db-[a-z0-9_]+-\d{8}T\d{6}Z-[a-z0-9]{6}$/);

export function newBackupId(database: string, at: Date, random: string): string {
  const stamp = at.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
  return `db-${database}-${stamp}-${random}`;
}

/** Keys a job may touch. Anything else (.., absolute, odd characters) is refused. */
export function isRepositoryKey(key: string): boolean {
  return /^[a-z]+(\/[A-Za-z0-9_.-]+)+$/.test(key) && !key.split("/").some((p) => p === "." || p === "..");
}

export const ChunkRef = z.object({
  id: ChunkId,
  /** Bytes of plaintext this chunk contributes to the dump stream. */
  plain_size: z.number().int().positive(),
  /** Bytes of the stored object, and their SHA-256: checkable without any key. */
  stored_size: z.number().int().positive(),
  stored_sha256: Sha256Hex,
});
export type ChunkRef = z.infer<typeof ChunkRef>;

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
  compression: z.object({ algorithm: z.literal("zstd"), level: z.number().int() }),
  encryption: z.object({ scheme: z.literal("age-x25519"), recipients: z.array(z.string()).min(1) }),
  chunker: z.object({
    algorithm: z.string(),
    min_size: z.number().int(),
    avg_size: z.number().int(),
    max_size: z.number().int(),
  }),
  chunk_prefix: z.string(),
  chunks: z.array(ChunkRef),
  stats: z.object({
    stored_bytes: z.number().int().nonnegative(),
    new_stored_bytes: z.number().int().nonnegative(),
    new_chunks: z.number().int().nonnegative(),
  }),
});
export type DatabaseManifest = z.infer<typeof DatabaseManifest>;
