// Damage for tests: flips bytes in miniflare's local R2, where blobs are plain files.
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";

/**
 * Flips one byte of a stored chunk: the manifest is found by content, the
 * chunk's pack by its SHA-256 (its name), and the byte inside the chunk's
 * range of the pack. Returns the chunk's id.
 */
export function tamperWithChunk(persistDir: string, backupId: string, index: number): string {
  const blobs = join(persistDir, "v3/r2/astrid-backups/blobs");
  const files = readdirSync(blobs).map((f) => join(blobs, f));
  const manifest = files.map((f) => readFileSync(f)).map(tryJson).find((m) => m?.backup_id === backupId);
  if (!manifest) throw new Error(`manifest of ${backupId} not found among ${files.length} blobs`);
  const chunk = manifest.chunks[index];
  const file = files.find((f) => createHash("sha256").update(readFileSync(f)).digest("hex") === chunk.pack);
  if (!file) throw new Error(`pack ${chunk.pack} of chunk ${chunk.id} not found`);
  const bytes = readFileSync(file);
  bytes[chunk.offset + Math.floor(chunk.stored_size / 2)]! ^= 0xff;
  writeFileSync(file, bytes);
  return chunk.id;
}

function tryJson(buf: Buffer): any {
  if (buf[0] !== 0x7b) return undefined;
  try {
    return JSON.parse(buf.toString("utf8"));
  } catch {
    return undefined;
  }
}

/**
 * Changes one table's checksum in a database backup's consistency record (one
 * hex digit, same length): the backup now says the table held other rows
 * than the ones that restore, as silent corruption between backup and restore would.
 */
export function tamperWithConsistency(persistDir: string, backupId: string, table: string): void {
  const blobs = join(persistDir, "v3/r2/astrid-backups/blobs");
  for (const file of readdirSync(blobs).map((f) => join(blobs, f))) {
    const manifest = tryJson(readFileSync(file));
    if (manifest?.backup_id !== backupId || !manifest.consistency) continue;
    const entry = manifest.consistency.tables[table];
    const checksum: string = entry.checksum ?? entry.md5; // records from before methods name it md5
    const flipped = `${checksum[0] === "0" ? "1" : "0"}${checksum.slice(1)}`;
    writeFileSync(file, readFileSync(file, "utf8").replace(`"${checksum}"`, `"${flipped}"`));
    return;
  }
  throw new Error(`manifest of ${backupId} with a consistency record not found`);
}
