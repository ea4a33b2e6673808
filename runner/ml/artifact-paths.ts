// Artifact paths come from places the runner does not control: a source
// server's listings (a compromised or buggy server) and a manifest in the
// repository. Each is used to build a URL on a target server, so one with
// "..", "." or empty segments, a leading "/", a backslash or a control
// character could reach outside the run's or model's artifact root there.
// Such a path stops the job instead.
import { AppError } from "../../workers/shared/errors.ts";

export function safeArtifactPath(path: string, what: string): string {
  const bad = path === "" || path.startsWith("/") || path.includes("\\") || /[\u0000-\u001f\u007f]/.test(path)
    || path.split("/").some((p) => p === "" || p === "." || p === "..");
  if (bad) throw new AppError("artifact_path_unsafe", `${what}: artifact path ${JSON.stringify(path)} is not a plain relative path; refused`);
  return path;
}
