// repository.gc: deletes packs that no manifest references, and the private
// packs of archives whose manifest is gone. Unreferenced objects younger
// than the grace period are kept: the catalog makes GC exclusive with every
// other job, and the grace period covers a runner that was declared lost but
// is in fact still writing. A pack that is only partly referenced is kept
// whole (repacking it is not done yet); its dead bytes are reported.
import type { RepositoryGcDispatch as GcDispatch, RepositoryGcResult as GcResult } from "../../workers/maintenance/protocol.ts";
import type { JobContext } from "../job-context.ts";
import type { ListedObject } from "../repository/client.ts";
import { allManifests } from "../repository/manifests.ts";

export async function collectGarbage(job: GcDispatch, ctx: JobContext): Promise<GcResult> {
  const started = Date.now();
  const repo = ctx.repository;
  const referenced = new Set<string>();
  const liveArchives = new Set<string>();
  let manifests = 0;
  for await (const m of allManifests(repo)) {
    manifests++;
    if (m.pack_prefix === "packs/") for (const c of m.chunks) referenced.add(c.pack);
    else liveArchives.add(m.backup_id);
    ctx.progress({ phase: "reading manifests", bytes: 0, chunks: manifests });
  }
  const cutoff = started - job.grace_minutes * 60_000;
  const tally = { scanned_objects: 0, deleted_objects: 0, reclaimed_bytes: 0, kept_young: 0 };
  const sweep = async (prefix: string, isGarbage: (o: ListedObject) => boolean) => {
    for await (const page of repo.list(prefix)) {
      const garbage = page.filter(isGarbage);
      const doomed = garbage.filter((o) => Date.parse(o.uploaded) < cutoff);
      tally.scanned_objects += page.length;
      tally.kept_young += garbage.length - doomed.length;
      tally.deleted_objects += doomed.length;
      tally.reclaimed_bytes += doomed.reduce((sum, o) => sum + o.size, 0);
      if (doomed.length && !job.dry_run) await repo.delete(doomed.map((o) => o.key));
      ctx.progress({ phase: "sweeping", bytes: tally.reclaimed_bytes, chunks: tally.scanned_objects });
    }
  };
  await sweep("packs/", (o) => !referenced.has(o.key.slice(o.key.lastIndexOf("/") + 1)));
  await sweep("archive/", (o) => !liveArchives.has(o.key.split("/")[1] ?? ""));
  return { kind: "repository.gc", dry_run: job.dry_run, manifests, ...tally, duration_ms: Date.now() - started };
}
