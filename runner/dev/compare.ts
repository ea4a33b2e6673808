// Fingerprints a database's contents so a restored copy can be compared with
// its source: equal fingerprints mean equal data, down to float bits. The
// fingerprint is the one new consistency records use (runner/database/consistency.ts).
import { CONSISTENCY_METHOD, fingerprintSql, parseFingerprints } from "../database/consistency.ts";
import { psql } from "./postgres.ts";

export interface Fingerprint {
  /** Tables: row count. Sequences: last_value. Views and extensions: 0. */
  rows: number;
  checksum: string;
}

/**
 * Keys are "schema.table" for tables and materialized views (content),
 * "view:schema.name" (definition), "sequence:schema.name" (last_value and
 * is_called) and "extension:name" (version and schema). Objects that belong
 * to an extension are left to the extension's entry.
 */
export async function tableFingerprints(url: string): Promise<Record<string, Fingerprint>> {
  return parseFingerprints(await psql(url, fingerprintSql(CONSISTENCY_METHOD)));
}
