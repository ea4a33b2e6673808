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
 * readManifestFile for a chunk manifest, with the chunk list packed as it is
 * read: the entries never all exist as objects, nor the manifest as one
 * string (a 4 GiB dump's manifest is ~17 MiB of JSON; parsed whole it raised
 * a restore's peak RSS by ~70 MiB). The other fields are checked by `schema`
 * with an empty chunk list.
 */
export async function readPackedManifestFile<M extends { chunks: ChunkRef[] }>(repo: RepositoryClient, key: string, schema: z.ZodType<M>): Promise<Packed<M>> {
  const raw = await repo.get(key);
  const table = new ChunkTable();
  const entry = (value: unknown, index: number) => {
    const ref = ChunkRef.safeParse(value);
    if (!ref.success) {
      const issue = ref.error.issues[0]!;
      throw new AppError("manifest_invalid", `${key}: chunks.${index}${issue.path.length ? `.${issue.path.join(".")}` : ""}: ${issue.message}`);
    }
    table.push(ref.data);
  };
  const value = packLines(key, raw, entry) ?? packWhole(key, raw, entry);
  const { chunks: _, ...fields } = checked(key, { ...value, chunks: [] }, schema);
  return { ...fields, chunks: table };
}

const CHUNKS_OPEN = '"chunks": [';
const LINE_START = "\n  {";

/**
 * The layout manifestPieces writes: the fields, then `"chunks": [` last, one
 * chunk per line. Each line is parsed on its own. Undefined for any other
 * layout (manifests written whole, before manifests were written in pieces).
 */
function packLines(key: string, raw: Buffer, entry: (value: unknown, index: number) => void): { chunks?: unknown } | undefined {
  // The last occurrence: chunk lines hold only the chunk's own fields, and a quote inside a JSON string is escaped.
  const open = raw.lastIndexOf(CHUNKS_OPEN);
  if (open < 0 || raw.toString("utf8", open + CHUNKS_OPEN.length, open + CHUNKS_OPEN.length + LINE_START.length) !== LINE_START) return undefined;
  const notJson = () => new AppError("manifest_invalid", `${key} is not JSON`);
  let at = open + CHUNKS_OPEN.length;
  for (let index = 0; ; index++) {
    const next = raw.indexOf("\n", at + 1);
    const end = next < 0 ? raw.length : next;
    const line = raw.toString("utf8", at + LINE_START.length - 1, end);
    // Every line but the last ends with a comma.
    const more = raw.toString("utf8", end, end + LINE_START.length) === LINE_START;
    if (more !== line.endsWith(",")) throw notJson();
    let value: unknown;
    try {
      value = JSON.parse(more ? line.slice(0, -1) : line);
    } catch {
      throw notJson();
    }
    entry(value, index);
    at = end;
    if (!more) break;
  }
  if (!/^\s*\]\s*\}\s*$/.test(raw.toString("utf8", at))) throw notJson();
  return parseJson(key, Buffer.concat([raw.subarray(0, open), Buffer.from('"chunks": []}')])) as { chunks?: unknown };
}

/** Any other layout: JSON.parse of the whole, each chunk entry packed as it is met and replaced by its index. */
function packWhole(key: string, raw: Buffer, entry: (value: unknown, index: number) => void): { chunks?: unknown } | null {
  let count = 0;
  const packChunk = function (this: unknown, k: string, value: unknown): unknown {
    if (!Array.isArray(this) || value === null || typeof value !== "object" || Array.isArray(value)) return value;
    entry(value, Number(k));
    return count++;
  };
  const value = parseJson(key, raw, packChunk) as { chunks?: unknown } | null;
  // Each chunk entry became its index in the table, in the order JSON.parse met them.
  const indexes = value?.chunks;
  if (!Array.isArray(indexes) || indexes.length !== count || !indexes.every((n, i) => n === i)) {
    throw new AppError("manifest_invalid", `${key}: chunks: chunk entries missing or outside the chunk list`);
  }
  return value;
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
