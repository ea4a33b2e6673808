import { defineConfig } from "drizzle-kit";

// Generates SQL migrations from workers/catalog/schema.ts into migrations/,
// which `wrangler d1 migrations apply` (and the tests) apply.
export default defineConfig({
  dialect: "sqlite",
  schema: "./workers/catalog/schema.ts",
  out: "./migrations",
});
