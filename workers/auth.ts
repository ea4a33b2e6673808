// Bearer-token auth for the admin API: ADMIN_TOKEN may change things,
// VIEWER_TOKEN may read. Each secret may hold a comma-separated list so a
// token can be rotated without downtime.
import { createMiddleware } from "hono/factory";
import { secretsEqual, sha256, toHex } from "./crypto.ts";
import { AppError } from "./shared/errors.ts";
import type { AppEnv, Role } from "./context.ts";

function tokens(list: unknown): string[] {
  return typeof list === "string" ? list.split(",").map((t) => t.trim()).filter((t) => t.length >= 16) : [];
}

/** Compares against every configured token so timing says nothing about which matched. */
async function roleOf(env: AppEnv["Bindings"], presented: string): Promise<Role | undefined> {
  let role: Role | undefined;
  for (const t of tokens(env.ADMIN_TOKEN)) if (await secretsEqual(presented, t)) role = "admin";
  for (const t of tokens(env.VIEWER_TOKEN)) if ((await secretsEqual(presented, t)) && !role) role = "viewer";
  return role;
}

export function requireRole(needed: Role) {
  return createMiddleware<AppEnv>(async (c, next) => {
    const header = c.req.header("authorization") ?? "";
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match) throw new AppError("unauthorized", "missing bearer token", 401);
    const role = await roleOf(c.env, match[1]!);
    if (!role) throw new AppError("unauthorized", "invalid token", 401);
    // Audit names a token by fingerprint, never by value; Cloudflare Access adds the person.
    const fingerprint = toHex(await sha256(match[1]!)).slice(0, 8);
    const person = c.req.header("cf-access-authenticated-user-email");
    c.set("actor", `${role}:${fingerprint}${person ? `:${person}` : ""}`);
    c.set("role", role);
    if (needed === "admin" && role !== "admin") throw new AppError("forbidden", "this operation needs an admin token", 403);
    await next();
  });
}
