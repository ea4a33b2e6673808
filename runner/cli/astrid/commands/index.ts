// Every command, in the order help lists them.
import type { Command } from "../context.ts";
import { backupDatabase, backupMl, backupsList, backupsShow, backupStorage, verify } from "./backups.ts";
import { drill, scenarioList, scenarioRun } from "./dr.ts";
import { jobsList, jobsShow, jobsWait } from "./jobs.ts";
import { catalogRebuild, gc } from "./maintenance.ts";
import { restore, restorePitr } from "./restore.ts";
import { status } from "./status.ts";

export const COMMANDS: Command[] = [
  status,
  backupsList, backupsShow,
  backupDatabase, backupStorage, backupMl,
  verify, restore, restorePitr,
  jobsList, jobsShow, jobsWait,
  drill, scenarioList, scenarioRun,
  gc, catalogRebuild,
];
