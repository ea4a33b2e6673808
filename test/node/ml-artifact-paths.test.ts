// Artifact paths from a source server's listings or from a manifest are used
// to build URLs on a target server: anything that could leave the run's or
// model's artifact root is refused before any request is made.
import { describe, expect, it } from "vitest";
import { safeArtifactPath } from "../../runner/ml/artifact-paths.ts";
import { uploadArtifacts } from "../../runner/ml/artifacts.ts";
import type { MlBlob, MlManifest } from "../../workers/shared/format.ts";

describe("artifact paths", () => {
  it("passes plain relative paths, spaces and dots inside names included", () => {
    for (const p of ["MLmodel", "model/model.pkl", "notes with space.txt", "a/b/c..d/.hidden", "plots/nested/deep/confusion.csv"]) {
      expect(safeArtifactPath(p, "test")).toBe(p);
    }
  });

  it("refuses .., ., empty segments, absolute paths, backslashes and control characters", () => {
    for (const p of ["..", "../x", "a/../../x", "a/./b", "./a", "a//b", "a/", "/etc/passwd", "a\\..\\b", "a\u0000b", "a\nb", ""]) {
      expect(() => safeArtifactPath(p, "test"), JSON.stringify(p)).toThrow(expect.objectContaining({ code: "artifact_path_unsafe" }));
    }
  });

  it("a restore refuses a manifest blob whose path climbs out, before touching the target or the repository", async () => {
    const calls: string[] = [];
    const spy = new Proxy({}, { get: (_t, name) => (...args: unknown[]) => { calls.push(String(name)); return args; } });
    const blob = { kind: "model_artifact", name: "m-1/../../x", model_id: "m-1", path: "../../x", size: 1, sha256: "0".repeat(64), chunks: [] } as MlBlob;
    const manifest = { backup_id: "ml-a-20260101T000000Z-abcdef", blobs: [blob], chunks: [] } as unknown as MlManifest;
    const tally = { artifacts: 0, artifact_bytes: 0 };
    await expect(uploadArtifacts(spy as never, spy as never, manifest, (() => {}) as never, "mlflow-artifacts:/1/models/m-2/artifacts", [blob], tally))
      .rejects.toMatchObject({ code: "artifact_path_unsafe" });
    expect(calls).toEqual([]);
    expect(tally.artifacts).toBe(0);
  });
});
