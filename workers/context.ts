// What every handler of the Worker is given, loaded once per request, Queue
// message or cron run and passed down: the bindings, the validated config and
// the catalog. Hono routes see the same things as context variables.
import type { Catalog } from "./catalog/catalog.ts";
import type { BackupConfig } from "./config.ts";
import type { Env } from "./env.ts";

export interface KindContext {
  env: Env;
  config: BackupConfig;
  catalog: Catalog;
  now: Date;
}

export type Role = "admin" | "viewer";

/** Hono's context types for this Worker. */
export interface AppEnv {
  Bindings: Env;
  Variables: { actor: string; role: Role; catalog: Catalog; config: BackupConfig };
}
