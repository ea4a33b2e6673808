import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { PythonToolsLastSequencer } from "./test/support/sequencer.ts";

// Two projects: the Worker's tests run inside workerd (the Workers Vitest
// integration, with local R2, D1 and Queues); the runner's and the
// end-to-end tests run in Node against real PostgreSQL and a real local stack.
export default defineConfig({
  test: {
    sequence: { sequencer: PythonToolsLastSequencer },
    projects: [
      {
        plugins: [
          cloudflareTest(async () => ({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                TEST_MIGRATIONS: await readD1Migrations("./migrations"),
                ADMIN_TOKEN: "test-admin-token-0123456789,test-admin-token-rotated-0001",
                VIEWER_TOKEN: "test-viewer-token-0123456789",
                RUNNER_TOKEN: "test-runner-token-0123456789",
                JOB_TOKEN_SECRET: "test-job-token-secret",
                CHUNK_ID_KEY: "11".repeat(32),
                // A real pair (test only): the Worker encrypts storage blobs to it and decrypts them on restore.
                AGE_IDENTITY: "AGE-SECRET-KEY-1D934Q3YDUFDJTK4MGKCPCK3KWU2P7UTUM3T7KAYDYG6CTJAPKYQQ3HHXHC",
                BACKUP_ENCRYPTION_KEY: "age1n8ps7h4e5g9f7aqgkmu5s8t8zvygt36ftckclq8m8ukkphvfj93sa8s4re",
                DATABASE_URL: "postgres://backup:s3cret-pw@127.0.0.1:1/astrid",
                // Nothing listens on port 1: dispatches fail fast, which the consumer tests rely on.
                RUNNER_URL: "http://127.0.0.1:1",
                // wrangler.toml's two buckets plus a restore target and a bucket with no replica.
                STORAGE_BUCKETS: "astrid-data=ASTRID_DATA,astrid-data-replica=ASTRID_DATA_REPLICA,restore-target=RESTORE_TARGET,astrid-scratch=SCRATCH",
              },
              r2Buckets: { RESTORE_TARGET: "restore-target", SCRATCH: "astrid-scratch" },
            },
          })),
        ],
        test: {
          name: "workers",
          include: ["test/workers/**/*.test.ts"],
          // One runtime for every file, in one batch: a workerd start per file cost ~3 minutes of the
          // suite on 2 cores. Files share its storage, so each test starts from resetState() (helpers.ts).
          isolate: false,
          maxWorkers: 1,
          setupFiles: ["./test/workers/apply-migrations.ts"],
        },
      },
      {
        test: {
          name: "node",
          include: ["test/node/**/*.test.ts"],
          environment: "node",
          globalSetup: ["./test/support/global-setup.ts", "./test/support/moto-setup.ts"],
          testTimeout: 120_000,
          hookTimeout: 240_000,
          // Stacks and databases are heavy on a 2-core machine: one file at a time.
          fileParallelism: false,
        },
      },
    ],
  },
});
