// Reading a manifest object: a missing key, bad JSON or a failed schema is
// refused as manifest_invalid before any job relies on it.
import { createHash } from "node:crypto";
import type { z } from "zod";
import { ChunkRef } from "../../workers/shared/format.ts";
import { AppError } from "../../workers/shared/errors.ts";
import type { RepositoryClient } from "./client.ts";
import { ChunkTable } from "./chunk-table.ts";

export async function readManifestFile<T>(repo: RepositoryClient, key: string, schema: z.ZodType<T>): Promise<T> {
  return checked(key, parseJson(key, await repo.get(key)), schema);
}

function parseJson(key: string, raw: Buffer, reviver?: (this: unknown, k: string, v: unknown) => unknown): unknown {
  try {
    return JSON.parse(raw.toString("utf8"), reviver);
  } catch (e) {
    throw e instanceof AppError ? e : new AppError("manifest_invalid", `${key} is not JSON`);
  }
}

function checked<T>(key: string, value: unknown, schema: z.ZodType<T>): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  throw new AppError("manifest_invalid", `${key}: ${issue.path.length ? `${issue.path.join(".")}: ` : ""}${issue.message}`);
}

/** A chunk manifest whose chunk list is packed (chunk-table.ts). */
export type Packed<M extends { chunks: ChunkRef[] }> = Omit<M, "chunks"> & { chunks: ChunkTable };

/**
 * readManifestFile for a manifest whose only array of objects is its chunk
 * list: each chunk entry is checked and packed as JSON.parse meets it, so
 * the entries never all exist as objects at once. The other fields are then
 * checked by `schema` with an empty chunk list.
 */
export async function readPackedManifestFile<M extends { chunks: ChunkRef[] }>(repo: RepositoryClient, key: string, schema: z.ZodType<M>): Promise<Packed<M>> {
  const table = new ChunkTable();
  const packChunk = function (this: unknown, k: string, value: unknown): unknown {
    if (!Array.isArray(this) || value === null || typeof value !== "object" || Array.isArray(value)) return value;
    const entry = ChunkRef.safeParse(value);
    if (!entry.success) {
      const issue = entry.error.issues[0]!;
      throw new AppError("manifest_invalid", `${key}: chunks.${k}${issue.path.length ? `.${issue.path.join(".")}` : ""}: ${issue.message}`);
    }
    table.push(entry.data);
    return table.length - 1;
  };
  const value = parseJson(key, await repo.get(key), packChunk) as { chunks?: unknown } | null;
  // Each chunk entry became its index in the table, in the order JSON.parse met them.
  const indexes = value?.chunks;
  if (!Array.isArray(indexes) || indexes.length !== table.length || !indexes.every((n, i) => n === i)) {
    throw new AppError("manifest_invalid", `${key}: chunks: chunk entries missing or outside the chunk list`);
  }
  const { chunks: _, ...fields } = checked(key, { ...value, chunks: [] }, schema);
  return { ...fields, chunks: table };
}

/** Chunk entries per piece of a manifest's bytes. */
const CHUNKS_PER_PIECE = 1024;

/**
 * A chunk manifest's JSON, in pieces, and their SHA-256: the fields indented
 * by one space, each chunk on a line of its own. A 4 GiB dump has ~65,000
 * chunks; built this way the manifest never exists as one string, one Buffer
 * and a validated copy of its chunk list at once. `fields` has been validated
 * by the manifest's schema (with an empty chunk list); each chunk is checked here.
 */
export function manifestPieces(fields: object, chunks: ChunkRef[]): { pieces: Buffer[]; sha256: string } {
  const head = JSON.stringify({ ...fields, chunks: [] }, null, 1);
  const empty = head.lastIndexOf('"chunks": []');
  if (empty < 0 || head.slice(empty + '"chunks": []'.length).trim() !== "}") throw new Error("manifest fields: chunks must come last");
  const pieces = [Buffer.from(head.slice(0, empty) + '"chunks": [')];
  for (let from = 0; from < chunks.length; from += CHUNKS_PER_PIECE) {
    const lines = chunks.slice(from, from + CHUNKS_PER_PIECE).map((c, i) => {
      const check = ChunkRef.safeParse(c);
      if (!check.success) throw new Error(`chunk #${from + i} is not a valid chunk reference: ${check.error.issues[0]!.message}`);
      return `\n  ${JSON.stringify(c)}`;
    });
    pieces.push(Buffer.from(lines.join(",") + (from + CHUNKS_PER_PIECE < chunks.length ? "," : "")));
  }
  pieces.push(Buffer.from(`${chunks.length > 0 ? "\n " : ""}]\n}`));
  const hash = createHash("sha256");
  for (const p of pieces) hash.update(p);
  return { pieces, sha256: hash.digest("hex") };
}
