// A throwaway PostgreSQL cluster with wal_level=logical, for continuous
// archiving's tests (the machine's server runs with wal_level=replica): one
// per test file, on a free port, started from the installed binaries and
// deleted by stop().
import { startThrowawayPostgres, type PgServer } from "../../runner/dev/postgres.ts";

export const LOGICAL_SETTINGS = {
  wal_level: "logical",
  max_replication_slots: "8",
  max_wal_senders: "8",
  // A lost slot is a test case: small enough that a test can push a slot past it if it wants to.
  max_slot_wal_keep_size: "256MB",
};

export function startLogicalPostgres(): Promise<PgServer> {
  return startThrowawayPostgres(LOGICAL_SETTINGS);
}
