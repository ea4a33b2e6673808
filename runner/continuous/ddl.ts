// DDL capture: logical decoding carries rows, not schema changes. Where the
// role may create an event trigger, the stream installs one that writes each
// DDL statement into the WAL as a transactional logical message
// (pg_logical_emit_message, prefix "astrid_ddl"), so it arrives in the stream
// in its place among the changes and the replay runs it there. A table
// created this way is also added to the stream's publication in the same
// transaction. The message is the client's query text: a query string that
// holds more than one statement could carry DML that the stream also decodes
// as rows, so such a message is not replayed; the stream treats it as DDL it
// could not capture (a new base and a recorded gap).
import { PgWire } from "../database/pg-wire.ts";
import { DDL_MESSAGE_PREFIX, quoteIdent } from "./pgoutput.ts";

export const DDL_SCHEMA = "astrid_continuous";
export const DDL_TRIGGER = "astrid_capture_ddl";
/** Set in the stream's own session: its DDL (publication, capture) is not captured. */
export const MAINTENANCE_SETTING = "astrid.stream_maintenance";

/** Installs (or refreshes) the event trigger; false when the role may not (then schema changes fall back to a new base). */
export async function installDdlCapture(sql: PgWire, publication: string): Promise<boolean> {
  const pub = publication.replace(/'/g, "''");
  await sql.query(`
    CREATE SCHEMA IF NOT EXISTS ${DDL_SCHEMA};
    CREATE OR REPLACE FUNCTION ${DDL_SCHEMA}.capture_ddl() RETURNS event_trigger
      LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $fn$
    DECLARE
      r record;
    BEGIN
      -- the streams' own upkeep (a re-base's publication and capture refresh while the old stream still decodes) is not the user's schema
      IF current_setting('${MAINTENANCE_SETTING}', true) = 'on' THEN
        RETURN;
      END IF;
      -- once per client query, however many commands it ran
      IF current_setting('astrid.ddl_query', true) IS DISTINCT FROM md5(current_query()) THEN
        PERFORM set_config('astrid.ddl_query', md5(current_query()), true);
        PERFORM pg_logical_emit_message(true, '${DDL_MESSAGE_PREFIX}', current_query());
      END IF;
      FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE TABLE' AND object_type = 'table' LOOP
        BEGIN
          EXECUTE format('ALTER PUBLICATION %I ADD TABLE %s', '${pub}', r.object_identity);
        EXCEPTION WHEN others THEN
          NULL; -- no key or not ours: covered by the base backups only
        END;
      END LOOP;
    END
    $fn$;
    DROP EVENT TRIGGER IF EXISTS ${DDL_TRIGGER};
    CREATE EVENT TRIGGER ${DDL_TRIGGER} ON ddl_command_end EXECUTE FUNCTION ${DDL_SCHEMA}.capture_ddl();`);
  return true;
}

/** Removes the capture from a database (continuous protection dropped, or a restored copy). */
export async function removeDdlCapture(sql: PgWire): Promise<void> {
  await sql.query(`DROP EVENT TRIGGER IF EXISTS ${DDL_TRIGGER}; DROP SCHEMA IF EXISTS ${quoteIdent(DDL_SCHEMA)} CASCADE;`);
}

/**
 * Whether SQL text is one statement: no semicolon outside quotes, dollar
 * quotes and comments, except at the end.
 */
export function isSingleStatement(text: string): boolean {
  let i = 0;
  let statements = 0;
  let content = false;
  while (i < text.length) {
    const c = text[i]!;
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, i + 1);
      if (end < 0) return false;
      // a doubled quote continues the literal; the loop sees it as the next literal
      i = end + 1;
      content = true;
    } else if (c === "-" && text[i + 1] === "-") {
      const end = text.indexOf("\n", i);
      i = end < 0 ? text.length : end + 1;
    } else if (c === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2);
      if (end < 0) return false;
      i = end + 2;
    } else if (c === "$") {
      const tag = /^\$[A-Za-z_]*\$/.exec(text.slice(i))?.[0];
      if (tag) {
        const end = text.indexOf(tag, i + tag.length);
        if (end < 0) return false;
        i = end + tag.length;
      } else i++;
      content = true;
    } else if (c === ";") {
      if (content) statements++;
      content = false;
      i++;
    } else {
      if (!/\s/.test(c)) content = true;
      i++;
    }
  }
  if (content) statements++;
  return statements === 1;
}
