// Where a restore given as a URL may connect: one policy, applied by the
// Worker to the host as written (names it knows, literal addresses) and by
// the runner to every address the host resolves to right before it
// connects (runner/target-address.ts), so a name that resolves to a
// link-local or metadata address is refused too.
import { z } from "zod";

export const TargetPolicy = z.object({
  /** RESTORE_TARGET_HOSTS: exact names or addresses, ".suffix" for a domain; empty: any host the checks below allow. */
  allow: z.array(z.string()),
  /** RESTORE_TARGET_REFUSE_LOOPBACK: refuse 127.0.0.0/8 and ::1 (in production the runner's loopback is its own container). */
  refuse_loopback: z.boolean(),
});
export type TargetPolicy = z.infer<typeof TargetPolicy>;

const METADATA_HOSTS = new Set(["metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal"]);

export const bareHost = (host: string) => host.replace(/^\[|\]$/g, "").toLowerCase();

export const hostListed = (host: string, allow: string[]) =>
  allow.some((entry) => (entry.startsWith(".") ? host === entry.slice(1) || host.endsWith(entry) : host === entry));

/**
 * Why an address (or a host name known to mean the metadata service) is
 * refused, or undefined. IPv4-mapped IPv6 (::ffff:169.254.169.254) counts as
 * its IPv4 address.
 */
export function addressProblem(host: string, policy: Pick<TargetPolicy, "refuse_loopback">): string | undefined {
  let h = bareHost(host);
  if (METADATA_HOSTS.has(h)) return "a metadata service name";
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
  if (mapped) h = mapped[1]!;
  const v4 = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(h);
  if (v4) {
    const [a, b] = [Number(v4[1]), Number(v4[2])];
    if (a === 169 && b === 254) return "a link-local address";
    if (h === "100.100.100.200") return "a metadata address";
    if (a === 0) return "an unspecified address";
    if (a === 127 && policy.refuse_loopback) return "a loopback address (RESTORE_TARGET_REFUSE_LOOPBACK)";
    return undefined;
  }
  if (h.includes(":")) {
    if (/^fe[89ab][0-9a-f]:/.test(h)) return "a link-local address";
    if (h === "fd00:ec2::254") return "a metadata address";
    if (h === "::") return "an unspecified address";
    if (h === "::1" && policy.refuse_loopback) return "a loopback address (RESTORE_TARGET_REFUSE_LOOPBACK)";
    return undefined;
  }
  if (h === "localhost" && policy.refuse_loopback) return "a loopback name (RESTORE_TARGET_REFUSE_LOOPBACK)";
  return undefined;
}
