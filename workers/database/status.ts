// GET /backup/database/status: per configured database, the newest restore
// point and the newest verified one, with the RPO (age of the newest verified
// restore point) and the last measured restore time against their targets.
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../context.ts";
import { requireRole } from "../auth.ts";
import type { BackupRow } from "../catalog/schema.ts";

/** What another capability adds to a database's status (continuous archiving: its RPO in seconds); composed in app.ts. */
export type StatusExtension = (env: AppEnv["Bindings"], database: string, now: Date) => Promise<{ continuous?: z.infer<typeof ContinuousStatus> }>;

/** What continuous archiving adds to a database's status, when a stream protects it (the extension below fills it). */
export const ContinuousStatus = z.strictObject({
  stream_id: z.string(), status: z.string(), covered_until: z.string().nullable(), rpo_seconds: z.number().nullable(),
});

const RestorePoint = z.strictObject({
  backup_id: z.string(), type: z.enum(["full", "incremental", "archive"]), created_at: z.string(), verified_at: z.string().nullable(),
}).nullable();

/** GET /backup/database/status's answer: one entry per configured database. */
export const DatabaseStatusResponse = z.strictObject({
  databases: z.array(z.strictObject({
    database: z.string(),
    latest_backup: RestorePoint,
    latest_verified_backup: RestorePoint,
    rpo_minutes: z.number().nullable(),
    rpo_target_minutes: z.number(),
    rpo_met: z.boolean(),
    last_restore_minutes: z.number().nullable(),
    rto_target_minutes: z.number(),
    rto_met: z.boolean(),
    continuous: ContinuousStatus.optional(),
  })),
});

export function databaseStatusRoutes(extend?: StatusExtension) {
  const statusRoutes = new Hono<AppEnv>();
  statusRoutes.get("/backup/database/status", requireRole("viewer"), async (c) => {
    const config = c.get("config");
    const catalog = c.get("catalog");
    const now = Date.now();
    const databases = await Promise.all(Object.keys(config.databases).map(async (database) => {
      const [latest, verified, restored] = await Promise.all([
        catalog.latestBackup(database, {}),
        catalog.latestBackup(database, { verified: true }),
        catalog.latestBackup(database, { restored: true }),
      ]);
      const rpo = verified ? minutesSince(verified.created_at, now) : null;
      const rto = restored?.last_restore_ms != null ? restored.last_restore_ms / 60_000 : null;
      return {
        database,
        latest_backup: point(latest),
        latest_verified_backup: point(verified),
        rpo_minutes: rpo === null ? null : round(rpo),
        rpo_target_minutes: config.rpo_target_minutes,
        rpo_met: rpo !== null && rpo <= config.rpo_target_minutes,
        last_restore_minutes: rto === null ? null : round(rto),
        rto_target_minutes: config.rto_target_minutes,
        rto_met: rto !== null && rto <= config.rto_target_minutes,
        ...(extend ? await extend(c.env, database, new Date(now)) : {}),
      };
    }));
    return c.json({ databases });
  });
  return statusRoutes;
}

export const statusRoutes = databaseStatusRoutes();

function point(b: BackupRow | undefined) {
  return b ? { backup_id: b.id, type: b.type, created_at: b.created_at, verified_at: b.verified_at } : null;
}

const minutesSince = (iso: string, now: number) => (now - Date.parse(iso)) / 60_000;
const round = (n: number) => Math.round(n * 10) / 10;
