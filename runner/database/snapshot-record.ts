// The consistency record next to a database backup: a snapshot is exported,
// pg_dump reads it (--snapshot) while the record is computed in the same
// transaction. The record is a check for later drills, not part of the
// backup's data: if it cannot be taken (no permission to export a snapshot,
// say) the backup goes ahead without one and says so in the log.
import type { ConsistencyRecord } from "../../workers/shared/format.ts";
import type { JobContext } from "../job-context.ts";
import { scrub } from "../failure.ts";
import { openSnapshot } from "./consistency.ts";

export interface ConsistencyAlongside {
  /** Extra pg_dump arguments: the snapshot to read. */
  dumpArgs: string[];
  /** pg_dump has exited (either way): the snapshot may be released once the record is taken. */
  dumpDone(): void;
  /** The manifest field, or nothing when no record could be taken. */
  result(): Promise<{ consistency?: ConsistencyRecord }>;
}

const NONE: ConsistencyAlongside = { dumpArgs: [], dumpDone: () => {}, result: async () => ({}) };

export async function consistencyAlongside(sourceUrl: string, ctx: JobContext): Promise<ConsistencyAlongside> {
  // Off for measuring what the record costs a backup (bench/drill.ts).
  if (process.env.CONSISTENCY_RECORD === "off") return NONE;
  let session: Awaited<ReturnType<typeof openSnapshot>>;
  try {
    session = await openSnapshot(sourceUrl);
  } catch (e) {
    console.warn(`backing up without a consistency record: ${scrub((e as Error).message)}`);
    return NONE;
  }
  ctx.onCancel(() => session.close());
  const recorded = session.record().then(
    (r) => ({ consistency: r }),
    (e: Error) => {
      console.warn(`consistency record failed, backup continues without it: ${scrub(e.message)}`);
      return {};
    },
  );
  return {
    dumpArgs: [`--snapshot=${session.id}`],
    dumpDone: () => void recorded.finally(() => session.close()),
    result: () => recorded,
  };
}
