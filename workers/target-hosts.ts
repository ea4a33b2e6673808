// Where a restore given as a URL may go. A restore connects the runner to
// whatever host the request names; with an admin token that is an SSRF
// primitive (cloud metadata endpoints, link-local services next to the
// runner) and a way to ship a decrypted backup to any server. So:
//   - link-local and metadata addresses are refused by default
//     (169.254.0.0/16, fe80::/10, fd00:ec2::254, 100.100.100.200,
//     metadata.google.internal, …);
//   - RESTORE_TARGET_HOSTS, when set, is an allowlist: exact host names or
//     IPs, or ".suffix" for a domain and its subdomains. A listed host is
//     allowed even if it is link-local (the operator said so).
// Targets named by configured database or MLflow server names are the
// config's own and are not checked. Limit: a host name that resolves to a
// link-local address is not caught here (the Worker does not resolve names);
// use the allowlist to close that.
import type { BackupConfig } from "./config.ts";
import { badRequest } from "./shared/errors.ts";

const METADATA_HOSTS = new Set(["metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal"]);

function isBlockedAddress(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  if (METADATA_HOSTS.has(h)) return true;
  const v4 = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(h);
  if (v4) {
    const [a, b] = [Number(v4[1]), Number(v4[2])];
    return (a === 169 && b === 254) || h === "100.100.100.200" || h === "0.0.0.0";
  }
  if (h.includes(":")) return /^fe[89ab][0-9a-f]:/.test(h) || h === "fd00:ec2::254" || h === "::";
  return false;
}

function allowlist(config: BackupConfig): string[] {
  return config.restore_target_hosts.split(",").map((s) => s.trim().toLowerCase()).filter(Boolean);
}

const listed = (host: string, list: string[]) =>
  list.some((entry) => (entry.startsWith(".") ? host === entry.slice(1) || host.endsWith(entry) : host === entry));

/** Refuses (400) a restore target host the policy does not allow; returns the host for the audit log. */
export function checkTargetHost(config: BackupConfig, url: URL, field = "target"): string {
  const host = url.hostname.toLowerCase();
  if (!host) throw badRequest(`${field}: the URL names no host`);
  const list = allowlist(config);
  const bare = host.replace(/^\[|\]$/g, "");
  if (list.length && !listed(bare, list)) throw badRequest(`${field}: host ${host} is not in RESTORE_TARGET_HOSTS`);
  if (!list.length && isBlockedAddress(bare)) throw badRequest(`${field}: host ${host} is a link-local or metadata address`);
  return host;
}
