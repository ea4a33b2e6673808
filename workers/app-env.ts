import type { Catalog } from "./catalog/catalog.ts";
import type { BackupConfig } from "./config.ts";
import type { Env } from "./env.ts";
import type { Role } from "./auth.ts";

/** Hono's context types for this Worker. */
export interface AppEnv {
  Bindings: Env;
  Variables: { actor: string; role: Role; catalog: Catalog; config: BackupConfig };
}
