// Reading a manifest object: a missing key, bad JSON or a failed schema is
// refused as manifest_invalid before any job relies on it.
import type { z } from "zod";
import { AppError } from "../../workers/shared/errors.ts";
import type { RepositoryClient } from "./client.ts";

export async function readManifestFile<T>(repo: RepositoryClient, key: string, schema: z.ZodType<T>): Promise<T> {
  const raw = await repo.get(key);
  let parsed;
  try {
    parsed = schema.safeParse(JSON.parse(raw.toString("utf8")));
  } catch {
    throw new AppError("manifest_invalid", `${key} is not JSON`);
  }
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  throw new AppError("manifest_invalid", `${key}: ${issue.path.length ? `${issue.path.join(".")}: ` : ""}${issue.message}`);
}
