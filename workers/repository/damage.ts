// Which backups a damaged chunk affects, worked out by the Worker itself.
//
// Chunks are shared, so damage found through one backup concerns every backup
// whose manifest uses the chunk. The runner's report cannot be the authority
// for that: a compromised runner (or a leaked job token) could name every
// backup and have them all marked corrupt, after which restores are refused
// and retention stops protecting them. So the Worker takes from a failed
// verify only the chunk ids it claims are damaged, keeps those that belong to
// the verified backup's own manifest, checks each one's stored bytes in R2
// itself (missing pack, short read, SHA-256 differing from the manifest), and
// only then finds the other backups using a confirmed chunk by reading the
// manifests. Damage the Worker cannot see without the age identity (a chunk
// whose stored bytes are intact but do not decrypt) marks only the verified
// backup; a later passing full verify clears that mark.
import { CONTINUOUS_MANIFEST_PREFIX, DatabaseManifest, MANIFEST_PREFIX, ML_MANIFEST_PREFIX, MlManifest, packKey, SegmentManifest, type ChunkRef } from "../shared/format.ts";

/** At most this many claimed chunks are re-read per report: bounds the Worker's subrequests. */
export const MAX_CONFIRMED_CHUNKS = 64;

/** The chunk ids a verify's problem lines name ("chunk #<n> <id>: …"). */
export function claimedChunkIds(problems: string[]): Set<string> {
  return new Set(problems.map((p) => /^chunk #\d+ ([0-9a-f]{64})/.exec(p)?.[1]).filter((id): id is string => !!id));
}

async function sha256Hex(data: ArrayBuffer): Promise<string> {
  return [...new Uint8Array(await crypto.subtle.digest("SHA-256", data))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** True when R2 does not hold the chunk's stored bytes as the manifest records them. */
async function storedBytesDamaged(bucket: R2Bucket, prefix: string, c: ChunkRef): Promise<boolean> {
  const object = await bucket.get(packKey(prefix, c.pack), { range: { offset: c.offset, length: c.stored_size } });
  if (!object) return true;
  const bytes = await object.arrayBuffer();
  return bytes.byteLength !== c.stored_size || (await sha256Hex(bytes)) !== c.stored_sha256;
}

/** The claimed chunks of `manifest` whose damage the Worker confirms in R2. */
export async function confirmDamage(bucket: R2Bucket, manifest: { pack_prefix: string; chunks: ChunkRef[] }, claimed: Set<string>): Promise<Set<string>> {
  const confirmed = new Set<string>();
  const seen = new Set<string>();
  for (const c of manifest.chunks) {
    if (!claimed.has(c.id) || seen.has(c.id)) continue;
    seen.add(c.id);
    if (seen.size > MAX_CONFIRMED_CHUNKS) break;
    if (await storedBytesDamaged(bucket, manifest.pack_prefix, c)) confirmed.add(c.id);
  }
  return confirmed;
}

/** A manifest's chunk store, or undefined if the object is not a valid manifest (it is then no one's restore point). */
export async function readChunkManifest(bucket: R2Bucket, key: string): Promise<{ backup_id: string; pack_prefix: string; chunks: ChunkRef[] } | undefined> {
  const object = await bucket.get(key);
  if (!object) return undefined;
  let json: unknown;
  try {
    json = await object.json();
  } catch {
    return undefined;
  }
  const parsed = key.startsWith(ML_MANIFEST_PREFIX) ? MlManifest.safeParse(json)
    : key.startsWith(CONTINUOUS_MANIFEST_PREFIX) ? SegmentManifest.safeParse(json) : DatabaseManifest.safeParse(json);
  return parsed.success ? parsed.data : undefined;
}

/** Every database and ML manifest in the bucket (unreadable ones skipped), one at a time. */
async function* eachManifest(bucket: R2Bucket): AsyncGenerator<{ backup_id: string; pack_prefix: string; chunks: ChunkRef[] }> {
  for (const listPrefix of [MANIFEST_PREFIX, ML_MANIFEST_PREFIX, CONTINUOUS_MANIFEST_PREFIX]) {
    let cursor: string | undefined;
    do {
      const page = await bucket.list({ prefix: listPrefix, limit: 1000, ...(cursor ? { cursor } : {}) });
      for (const o of page.objects) {
        const m = await readChunkManifest(bucket, o.key);
        if (m) yield m;
      }
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor);
  }
}

/**
 * The pack keys some manifest references. GC's deletions are checked against
 * it, so a gc-scope token (stolen, or a runner with a bug) can only delete
 * what no backup needs. A manifest the Worker cannot parse protects nothing;
 * one it can parse protects its packs even if its MAC is wrong (keeping more is safe).
 */
export async function referencedPackKeys(bucket: R2Bucket): Promise<Set<string>> {
  const keys = new Set<string>();
  for await (const m of eachManifest(bucket)) for (const c of m.chunks) keys.add(packKey(m.pack_prefix, c.pack));
  return keys;
}

/** Every backup (database and ML) whose manifest in the given pack store uses one of `ids`, sorted. */
export async function backupsUsingChunks(bucket: R2Bucket, prefix: string, ids: Set<string>): Promise<string[]> {
  if (ids.size === 0) return [];
  const affected: string[] = [];
  for await (const m of eachManifest(bucket)) {
    if (m.pack_prefix === prefix && m.chunks.some((c) => ids.has(c.id))) affected.push(m.backup_id);
  }
  return affected.sort();
}

/**
 * The verdict the catalog records for a failed verify of `backupId`: the
 * other backups that share a chunk the Worker confirmed damaged. The runner's
 * own `affected_backups` is ignored.
 */
export async function affectedByDamage(bucket: R2Bucket, manifestKey: string, problems: string[]): Promise<string[]> {
  const claimed = claimedChunkIds(problems);
  if (claimed.size === 0) return [];
  const manifest = await readChunkManifest(bucket, manifestKey);
  if (!manifest) return [];
  const confirmed = await confirmDamage(bucket, manifest, claimed);
  return backupsUsingChunks(bucket, manifest.pack_prefix, confirmed);
}
