// Where a restore given as a URL may go. A restore connects the runner to
// whatever host the request names; with an admin token that is an SSRF
// primitive (cloud metadata endpoints, link-local services next to the
// runner) and a way to ship a decrypted backup to any server. So:
//   - link-local and metadata addresses are refused by default
//     (169.254.0.0/16, fe80::/10, fd00:ec2::254, 100.100.100.200,
//     metadata.google.internal, …), loopback too with RESTORE_TARGET_REFUSE_LOOPBACK;
//   - RESTORE_TARGET_HOSTS, when set, is an allowlist: exact host names or
//     IPs, or ".suffix" for a domain and its subdomains. A listed host is
//     allowed even if it is link-local (the operator said so).
// Targets named by configured database or MLflow server names are the
// config's own and are not checked. The Worker cannot resolve names: the
// same policy goes to the runner with the dispatch (targetPolicy), which
// checks every address the host resolves to right before connecting and
// connects to the address it checked (runner/target-address.ts).
import type { BackupConfig } from "./config.ts";
import { badRequest } from "./shared/errors.ts";
import { addressProblem, bareHost, hostListed, type TargetPolicy } from "./shared/target-policy.ts";

/** The policy a URL-given restore target is held to, for the runner's check at connection time. */
export function targetPolicy(config: BackupConfig): TargetPolicy {
  return {
    allow: config.restore_target_hosts.split(",").map((s) => s.trim().toLowerCase()).filter(Boolean),
    refuse_loopback: config.restore_target_refuse_loopback,
  };
}

/** Refuses (400) a restore target host the policy does not allow; returns the host for the audit log. */
export function checkTargetHost(config: BackupConfig, url: URL, field = "target"): string {
  const host = url.hostname.toLowerCase();
  if (!host) throw badRequest(`${field}: the URL names no host`);
  const policy = targetPolicy(config);
  const bare = bareHost(host);
  if (policy.allow.length && !hostListed(bare, policy.allow)) throw badRequest(`${field}: host ${host} is not in RESTORE_TARGET_HOSTS`);
  const problem = policy.allow.length ? undefined : addressProblem(bare, policy);
  if (problem) throw badRequest(`${field}: host ${host} is ${problem}`);
  return host;
}
