// Builds the console's static files into workers/console/ui/public/console/ (served by
// the Worker as Workers Static Assets, wrangler.toml [assets]): the app
// bundled from workers/console/ui/src with uPlot from npm, uPlot's stylesheet, and the
// runbook's sections as JSON so a failed job shows what to do about its
// error code. wrangler runs this before `wrangler dev` and `wrangler deploy`
// ([build] in wrangler.toml); the outputs are not committed.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const OUT = join(ROOT, "workers/console/ui/public/console");

export interface RunbookSection { anchor: string; title: string; text: string }
export interface Runbook { sections: RunbookSection[]; codes: Record<string, { meaning: string; action: string; section: string }> }

/** GitHub's heading anchor: lower case, punctuation dropped, spaces to dashes. */
const anchorOf = (title: string) => title.toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, "").replace(/ /g, "-");

/** Sections (## and ###) of docs/runbook.md, and each error code its tables name, with meaning, action and section. */
export function parseRunbook(markdown: string): Runbook {
  const sections: RunbookSection[] = [];
  const codes: Runbook["codes"] = {};
  let current: RunbookSection | undefined;
  for (const line of markdown.split("\n")) {
    const heading = /^#{2,3} (.+)$/.exec(line);
    if (heading) {
      current = { anchor: anchorOf(heading[1]!), title: heading[1]!, text: "" };
      sections.push(current);
      continue;
    }
    if (!current) continue;
    current.text += `${line}\n`;
    const row = /^\|\s*(`[^|]+)\|([^|]*)\|([^|]*)\|\s*$/.exec(line);
    if (!row) continue;
    for (const code of row[1]!.matchAll(/`([a-z0-9_]+)`/g)) {
      codes[code[1]!] ??= { meaning: row[2]!.trim(), action: row[3]!.trim(), section: current.anchor };
    }
  }
  for (const s of sections) s.text = s.text.trim();
  return { sections, codes };
}

export async function buildConsole(): Promise<void> {
  mkdirSync(OUT, { recursive: true });
  await build({
    entryPoints: [join(ROOT, "workers/console/ui/src/main.ts")], bundle: true, format: "esm", target: "es2022",
    minify: true, sourcemap: false, outfile: join(OUT, "app.js"), logLevel: "warning",
  });
  const uplot = dirname(createRequire(import.meta.url).resolve("uplot/package.json"));
  copyFileSync(join(uplot, "dist/uPlot.min.css"), join(OUT, "uPlot.min.css"));
  writeFileSync(join(OUT, "runbook.json"), JSON.stringify(parseRunbook(readFileSync(join(ROOT, "docs/runbook.md"), "utf8"))));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await buildConsole();
