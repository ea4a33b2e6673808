// Artifact trees (a run's, a logged model's) exported through the MLflow
// server's artifact proxy: listed one directory level per call, each file
// streamed straight into its own blob, its size checked against the listing,
// and every path checked before it is used (artifact-paths.ts); and put back
// under a new root on a restore, streamed from the repository.
import type { MlBlob, MlManifest } from "../../workers/shared/format.ts";
import { AppError } from "../../workers/shared/errors.ts";
import type { RepositoryClient } from "../repository/client.ts";
import type { chunkOpener } from "../repository/codec.ts";
import { blobBytes, type BlobMeta, type BlobWriter } from "./blobs.ts";
import { safeArtifactPath } from "./artifact-paths.ts";
import type { MlflowClient } from "./mlflow-client.ts";

/**
 * Every file under an artifact root (a run's or a logged model's), each
 * streamed into its own blob, `meta(path)` naming it. Returns the number of
 * files; their bytes are added to counts.artifact_bytes as they stream.
 */
export async function exportArtifactTree(
  mlflow: MlflowClient, store: BlobWriter, root: string, owner: string, meta: (path: string) => BlobMeta, counts: { artifact_bytes: number },
): Promise<number> {
  let files = 0;
  for await (const file of walkArtifacts(mlflow, root)) {
    const what = `artifact ${file.path} of ${owner}`;
    let bytes = 0;
    const source = await mlflow.download(`${root}/${file.path}`, what);
    await store.stream(meta(file.path), source, (n) => {
      bytes += n;
      counts.artifact_bytes += n;
    });
    if (file.file_size !== undefined && Number(file.file_size) !== bytes) {
      throw new AppError("artifact_changed", `${what} changed during the export (listed ${file.file_size} bytes, read ${bytes})`);
    }
    files++;
  }
  return files;
}

/** Every artifact file under a root (paths relative to its artifact root), one directory listing per call, depth first. */
async function* walkArtifacts(mlflow: MlflowClient, root: string, dir = ""): AsyncGenerator<{ path: string; file_size?: number }> {
  const files = (await mlflow.listArtifacts(dir ? `${root}/${dir}` : root)).sort((a, b) => a.path.localeCompare(b.path));
  for (const f of files) {
    const path = safeArtifactPath(dir ? `${dir}/${f.path.split("/").pop()}` : f.path, `artifact listing of ${root}`);
    if (f.is_dir) yield* walkArtifacts(mlflow, root, path);
    else yield { path, ...(f.file_size === undefined ? {} : { file_size: f.file_size }) };
  }
}

/** Uploads artifact blobs under `root` on the target, byte for byte; each blob's path is checked first. */
export async function uploadArtifacts(
  mlflow: MlflowClient, repo: RepositoryClient, manifest: MlManifest, open: ReturnType<typeof chunkOpener>, root: string, blobs: MlBlob[],
  tally: { artifacts: number; artifact_bytes: number },
): Promise<void> {
  for (const a of blobs) {
    const path = safeArtifactPath(a.path ?? "", `${a.kind} ${a.name} in ${manifest.backup_id}`);
    await mlflow.upload(`${root}/${path}`, a.size, () => blobBytes(repo, manifest, a, open));
    tally.artifacts++;
    tally.artifact_bytes += a.size;
  }
}
