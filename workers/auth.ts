// Bearer-token auth for the admin API: ADMIN_TOKEN may change things,
// VIEWER_TOKEN may read. Each secret may hold a comma-separated list so a
// token can be rotated without downtime.
import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import { secretsEqual, sha256, toHex } from "./crypto.ts";
import { AppError } from "./shared/errors.ts";
import type { AppEnv, Role } from "./context.ts";
import { accessKeys, accessSettings, verifyAccessJwt } from "./access.ts";

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

/** The role of the bearer token a request presents, if it is a valid one (for answers that depend on who asks). */
export async function presentedRole(env: AppEnv["Bindings"], authorization: string | undefined): Promise<Role | undefined> {
  const match = /^Bearer\s+(\S+)$/i.exec(authorization ?? "");
  return match ? roleOf(env, match[1]!) : undefined;
}

/**
 * A refused request is an audit line too (who knocked, on what): by token
 * fingerprint, never the token. Best effort: the refusal stands if D1 fails.
 */
async function auditDenied(c: Context<AppEnv>, actor: string, code: string): Promise<void> {
  try {
    await c.get("catalog").audit({ actor, action: `${c.req.method} ${c.req.path}`, target: c.req.path, outcome: "denied", detail: { code } });
  } catch {
    // The catalog being down must not turn a 401 into a 500.
  }
}

export function requireRole(needed: Role) {
  return createMiddleware<AppEnv>(async (c, next) => {
    const header = c.req.header("authorization") ?? "";
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match) {
      await auditDenied(c, "anonymous", "unauthorized");
      throw new AppError("unauthorized", "missing bearer token", 401);
    }
    // Audit names a token by fingerprint, never by value; Cloudflare Access adds the person.
    const fingerprint = toHex(await sha256(match[1]!)).slice(0, 8);
    const role = await roleOf(c.env, match[1]!);
    if (!role) {
      await auditDenied(c, `unknown:${fingerprint}`, "unauthorized");
      throw new AppError("unauthorized", "invalid token", 401);
    }
    // With Cloudflare Access configured, the person comes from its verified assertion; the
    // cf-access-authenticated-user-email header alone is never trusted (access.ts).
    const access = accessSettings(c.get("config"));
    let person: string | undefined;
    if (access) {
      const verdict = await verifyAccessJwt(c.req.header("cf-access-jwt-assertion"), access, accessKeys(c.env, access));
      if ("refused" in verdict) {
        await auditDenied(c, `${role}:${fingerprint}`, "access_denied");
        throw new AppError("access_denied", `Cloudflare Access: ${verdict.refused}`, 401);
      }
      person = verdict.email;
    }
    c.set("actor", `${role}:${fingerprint}${person ? `:${person}` : ""}`);
    c.set("role", role);
    if (needed === "admin" && role !== "admin") {
      await auditDenied(c, c.get("actor"), "forbidden");
      throw new AppError("forbidden", "this operation needs an admin token", 403);
    }
    await next();
  });
}
