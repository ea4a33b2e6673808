// GET /backup/database/status: per configured database, the newest restore
// point and the newest verified one, with the RPO (age of the newest verified
// restore point) and the last measured restore time against their targets.
import { Hono } from "hono";
import type { AppEnv } from "../context.ts";
import { requireRole } from "../auth.ts";
import type { BackupRow } from "../catalog/schema.ts";

/** What another capability adds to a database's status (continuous archiving: its RPO in seconds); composed in app.ts. */
export type StatusExtension = (env: AppEnv["Bindings"], database: string, now: Date) => Promise<Record<string, unknown>>;

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
