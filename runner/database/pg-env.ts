// Turns a postgres:// URL into libpq environment variables, so that child
// processes (psql, pg_dump, pg_restore) get credentials through their
// environment instead of argv, where any local user could read them in `ps`.
// Deliberately dependency-free: both the runner and the dev tooling import it.

// Query parameters we understand. Anything else is rejected rather than
// dropped, because silently ignoring e.g. an SSL option would connect with
// different settings than the URL asked for.
const QUERY_PARAMS: Record<string, string> = {
  sslmode: "PGSSLMODE",
  connect_timeout: "PGCONNECT_TIMEOUT",
  // The address a restore target's host was checked at (runner/target-address.ts): libpq connects there, no lookup.
  hostaddr: "PGHOSTADDR",
};

export function pgEnv(url: string): Record<string, string> {
  const parsed = new URL(url);
  if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") {
    throw new Error(`not a postgres URL (scheme ${parsed.protocol})`);
  }
  const env: Record<string, string> = {};
  // postgres:// is not a "special" scheme for WHATWG URL, so the host keeps
  // its percent-encoding (libpq allows %2F-encoded socket directories) and
  // IPv6 literals keep their brackets.
  const host = decodeURIComponent(parsed.hostname).replace(/^\[(.*)\]$/, "$1");
  setIfPresent(env, "PGHOST", host);
  setIfPresent(env, "PGPORT", parsed.port);
  setIfPresent(env, "PGUSER", decodeURIComponent(parsed.username));
  setIfPresent(env, "PGPASSWORD", decodeURIComponent(parsed.password));
  setIfPresent(env, "PGDATABASE", decodeURIComponent(parsed.pathname.replace(/^\//, "")));
  for (const [key, value] of parsed.searchParams) {
    const name = QUERY_PARAMS[key];
    if (name === undefined) throw new Error(`unsupported postgres URL parameter: ${key}`);
    env[name] = value;
  }
  return env;
}

// Absent parts are left out (not set to ""), so libpq applies its defaults.
function setIfPresent(env: Record<string, string>, name: string, value: string): void {
  if (value !== "") env[name] = value;
}
