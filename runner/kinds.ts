// The runner's side of the registry: for every kind the Worker dispatches to
// the runner, the schema its dispatch must parse with and the handler that
// runs it. A new runner kind is a handler in its capability's folder and one
// line here (the Worker's list is workers/kinds.ts).
import type { z } from "zod";
import type { JobResult, VerifyFindings } from "../workers/shared/protocol.ts";
import { DatabaseBackupDispatch, DatabaseRestoreDispatch, DatabaseVerifyDispatch } from "../workers/database/protocol.ts";
import { RepositoryGcDispatch } from "../workers/maintenance/protocol.ts";
import { MlBackupDispatch, MlRestoreDispatch, MlVerifyDispatch, TrainingDataDispatch, TrainingDataRestoreDispatch } from "../workers/ml/protocol.ts";
import { backupDatabase } from "./database/backup.ts";
import { restoreDatabase } from "./database/restore.ts";
import { verifyBackup } from "./database/verify.ts";
import { backupMlflow } from "./ml/backup.ts";
import { restoreMl } from "./ml/restore.ts";
import { backupTrainingData } from "./ml/training-data.ts";
import { restoreTrainingData } from "./ml/training-data-restore.ts";
import { CanaryDispatch, DrillDispatch } from "../workers/dr/protocol.ts";
import { runDrill } from "./dr/drill.ts";
import { writeCanaries } from "./dr/canary.ts";
import { verifyMl } from "./ml/verify.ts";
import { collectGarbage } from "./maintenance/gc.ts";
import type { JobContext } from "./job-context.ts";
import { ContinuousRestoreDispatch, ContinuousStreamDispatch } from "../workers/continuous/protocol.ts";
import { runStream } from "./continuous/stream.ts";
import { restorePointInTime } from "./continuous/restore.ts";

export interface RunnerHandler<D = any> {
  dispatch: z.ZodType<D, any>;
  run(job: D, ctx: JobContext): Promise<JobResult>;
}

const handler = <S extends z.ZodType>(dispatch: S, run: (job: z.infer<S>, ctx: JobContext) => Promise<JobResult>): RunnerHandler<z.infer<S>> => ({ dispatch: dispatch as z.ZodType<z.infer<S>, any>, run });

export const handlers: Record<string, RunnerHandler> = {
  "database.backup": handler(DatabaseBackupDispatch, backupDatabase),
  "database.verify": handler(DatabaseVerifyDispatch, verifyBackup),
  "database.restore": handler(DatabaseRestoreDispatch, restoreDatabase),
  "repository.gc": handler(RepositoryGcDispatch, collectGarbage),
  "ml.backup": handler(MlBackupDispatch, backupMlflow),
  "ml.restore": handler(MlRestoreDispatch, restoreMl),
  "ml.verify": handler(MlVerifyDispatch, verifyMl),
  "training_data.backup": handler(TrainingDataDispatch, backupTrainingData),
  "training_data.restore": handler(TrainingDataRestoreDispatch, restoreTrainingData),
  "dr.drill": handler(DrillDispatch, runDrill),
  "dr.canary": handler(CanaryDispatch, writeCanaries),
  "continuous.stream": handler(ContinuousStreamDispatch, runStream),
  "continuous.restore": handler(ContinuousRestoreDispatch, restorePointInTime),
};

/** A verify result that found damage: the job fails, and still carries its findings. */
export function isFailedVerify(result: JobResult): result is JobResult & VerifyFindings {
  return "ok" in result && result.ok === false && Array.isArray((result as Partial<VerifyFindings>).problems);
}
