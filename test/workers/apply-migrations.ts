import { applyD1Migrations, env } from "cloudflare:test";

// Each test file gets isolated storage; the catalog schema comes from the same migrations production uses.
await applyD1Migrations(env.CATALOG, env.TEST_MIGRATIONS);
