// Job-scoped repository tokens. The runner holds no R2 credentials: for each
// job the Worker mints a token that lets that job, and only while it runs,
// read the repository and (for a backup) write its own chunks and manifest.
import { base64url, fromBase64url, hmac, hmacVerify, secretList } from "../crypto.ts";

export interface JobGrant {
  job_id: string;
  /** write: a backup job; read: verify and restore of its backup; drill: read any backup (a drill restores several); gc: garbage collection (list and delete unreferenced objects). */
  scope: "read" | "write" | "gc" | "drill";
  backup_id: string;
  /** Unix seconds. */
  expires: number;
}

const PURPOSE = "astrid-backup job token v1";

export async function mintJobToken(secret: string, grant: JobGrant): Promise<string> {
  const payload = base64url(new TextEncoder().encode(JSON.stringify(grant)));
  return `${payload}.${base64url(await hmac(secretList(secret)[0]!, PURPOSE, payload))}`;
}

/** The grant, if the token is authentic and unexpired; undefined otherwise. */
export async function readJobToken(secret: string, token: string, now: Date): Promise<JobGrant | undefined> {
  const [payload, mac] = token.split(".");
  if (!payload || !mac) return undefined;
  let macBytes: Uint8Array;
  try {
    macBytes = fromBase64url(mac);
  } catch {
    return undefined;
  }
  // `secret` may list several (rotation): a token signed by any of them is authentic.
  let authentic = false;
  for (const s of secretList(secret)) if (await hmacVerify(s, PURPOSE, payload, macBytes)) authentic = true;
  if (!authentic) return undefined;
  const grant = JSON.parse(new TextDecoder().decode(fromBase64url(payload))) as JobGrant;
  return grant.expires * 1000 > now.getTime() ? grant : undefined;
}

/** However short the lease, a token lives this long: room for one slow heartbeat on a loaded runner. */
export const MIN_TOKEN_SECONDS = 60;

/**
 * When a token minted now expires: two job leases (JOB_LEASE_SECONDS), at
 * least a minute. Every heartbeat answers with a renewed token, so a running
 * job always holds a live one; once its heartbeats stop, the job-token check
 * refuses it after one lease anyway (requireJobToken: job_stale), so a stolen
 * token is worth at most one lease after its job stops reporting.
 */
export function tokenExpiry(leaseSeconds: number, now: Date): number {
  return Math.floor(now.getTime() / 1000) + Math.max(2 * leaseSeconds, MIN_TOKEN_SECONDS);
}
