// npm run catalog:rebuild [-- --url http://127.0.0.1:8787]: rebuilds the D1
// backup and storage snapshot rows from the manifests in R2, a page at a time, through the admin
// API. ADMIN_TOKEN comes from the environment or .dev.vars.
import { loadLocalVars } from "./local-vars.ts";

const i = process.argv.indexOf("--url");
const base = i > 0 ? process.argv[i + 1]! : (process.env.ASTRID_API_URL ?? "http://127.0.0.1:8787");
const token = process.env.ADMIN_TOKEN ?? (await loadLocalVars()).vars.ADMIN_TOKEN?.split(",")[0];
if (!token) throw new Error("set ADMIN_TOKEN");

let cursor: string | undefined;
const total = { scanned: 0, restored: 0, present: 0, invalid: [] as string[] };
do {
  const res = await fetch(`${base}/catalog/rebuild`, {
    method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(cursor ? { cursor } : {}),
  });
  const page = (await res.json()) as any;
  if (!res.ok) throw new Error(`${res.status}: ${page?.error?.message ?? "rebuild failed"}`);
  total.scanned += page.scanned;
  total.restored += page.restored.length;
  total.present += page.present;
  total.invalid.push(...page.invalid);
  cursor = page.next_cursor;
} while (cursor);
console.log(`manifests scanned: ${total.scanned}; rows restored: ${total.restored}; already listed: ${total.present}; unreadable: ${total.invalid.length}`);
for (const key of total.invalid) console.log(`  unreadable manifest: ${key}`);
if (total.invalid.length) process.exitCode = 1;
