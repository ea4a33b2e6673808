// The operator's console in a real browser (Debian's chromium driven by
// playwright-core) against the real local stack: sign-in, "back up now" and
// the backup's live progress, a restore whose copy equals the source, a
// refused restore read as a failed job with its runbook advice, a viewer who
// is offered no admin action, and the overview at phone width. Screenshots
// of the overview go to test/artifacts/ (docs/console.md shows one).
import { existsSync, mkdirSync } from "node:fs";
import { createServer, connect, type Socket } from "node:net";
import { join } from "node:path";
import { Transform } from "node:stream";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedAstronomyDatabase } from "../../runner/dev/astronomy-seed.ts";
import { tableFingerprints } from "../../runner/dev/compare.ts";
import { ROOT } from "../../runner/dev/stack.ts";
import { createDatabase, dropDatabase, scratchName, startTestStack, testPg, type TestStack } from "../support/fixture.ts";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ARTIFACTS = join(ROOT, "test/artifacts");
/** expect.poll's patience: pages render slowly on a loaded machine. */
const POLL = { timeout: 30_000, interval: 200 };

const pg = testPg();
const sourceName = scratchName("console_src");
const copyName = scratchName("console_copy");
let sourceUrl: string;
let stack: TestStack;
let browser: Browser;
let slowPostgres: Awaited<ReturnType<typeof throttledPostgres>> | undefined;
let backupId: string;
/** Uncaught page errors and Content-Security-Policy violations, over every page of the run. */
const pageProblems: string[] = [];

/**
 * PostgreSQL behind a proxy that sends the server's bytes at ~256 KB/s, so a
 * backup of a few MB runs for seconds and its progress can be watched.
 */
async function throttledPostgres(port: number, bytesPerSecond: number): Promise<{ port: number; close(): Promise<void> }> {
  const open = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(port, "127.0.0.1");
    open.add(client).add(upstream);
    // Each chunk leaves when the one before has had its time on the wire: no credit builds up while the connection idles.
    let free = 0;
    const throttle = new Transform({
      transform(chunk: Buffer, _enc, done) {
        const now = Date.now();
        free = Math.max(free, now) + (chunk.length / bytesPerSecond) * 1000;
        setTimeout(() => done(null, chunk), free - now);
      },
    });
    client.pipe(upstream);
    upstream.pipe(throttle).pipe(client);
    const close = () => { client.destroy(); upstream.destroy(); open.delete(client); open.delete(upstream); };
    client.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as { port: number }).port,
    close: async () => {
      for (const socket of open) socket.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

async function newPage(width = 1280, height = 900): Promise<Page> {
  const page = await browser.newPage({ viewport: { width, height } });
  page.on("pageerror", (e) => pageProblems.push(`page error: ${e.message}`));
  page.on("console", (m) => { if (/Content Security Policy/i.test(m.text())) pageProblems.push(`CSP: ${m.text()}`); });
  return page;
}

async function signIn(page: Page, token: string): Promise<void> {
  await page.goto(`${stack.workerUrl}/`);
  await page.getByLabel("API token (viewer or admin)").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
}

/** Polls a job page until the job ends; answers every text the facts showed on the way. */
async function watchJob(page: Page): Promise<{ seen: string[]; final: string }> {
  await page.getByRole("heading", { name: /^Job / }).waitFor();
  const seen: string[] = [];
  for (let i = 0; i < 900; i++) {
    const text = (await page.locator("#job-facts").textContent().catch(() => null)) ?? "";
    if (text) seen.push(text);
    if (/Status(succeeded|failed)/.test(text)) return { seen, final: text };
    await page.waitForTimeout(200);
  }
  throw new Error(`the job did not end; last seen: ${seen.at(-1)}`);
}

/** Opens the backup's page and its restore dialog with a target; answers what the dialog says will happen. */
async function openRestore(page: Page, target: string): Promise<string> {
  await page.goto(`${stack.workerUrl}/console/#/backup/${backupId}`);
  await page.getByRole("heading", { name: `Backup ${backupId}` }).waitFor();
  await page.getByRole("button", { name: "Restore" }).click();
  await page.getByLabel(/^Target database/).fill(target);
  return (await page.locator("#confirm-what").textContent()) ?? "";
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`no browser at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`);
  mkdirSync(ARTIFACTS, { recursive: true });
  sourceUrl = await createDatabase(pg, sourceName);
  await seedAstronomyDatabase(sourceUrl, { targetBytes: 8 * 1024 * 1024 });
  slowPostgres = await throttledPostgres(pg.port, 256 * 1024);
  const slowUrl = Object.assign(new URL(sourceUrl), { port: String(slowPostgres.port) }).toString();
  stack = await startTestStack({ vars: { DATABASE_URL: slowUrl } });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
});

afterAll(async () => {
  const step = async (name: string, work: () => Promise<unknown>) => {
    const started = Date.now();
    await work();
    console.log(`afterAll: ${name} took ${Date.now() - started} ms`);
  };
  await step("browser", async () => browser?.close());
  await step("stack", async () => stack?.dispose());
  await step("proxy", async () => slowPostgres?.close());
  for (const name of [sourceName, copyName]) await step(`drop ${name}`, () => dropDatabase(pg, name).catch(() => {}));
});

describe("the web console", () => {
  it("is served by the Worker at /console/ (/ redirects there) with a strict CSP", async () => {
    const root = await fetch(`${stack.workerUrl}/`, { redirect: "manual" });
    expect(root.status).toBe(302);
    expect(root.headers.get("location")).toBe("/console/");
    const page = await fetch(`${stack.workerUrl}/console/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<script type="module" src="app.js">');
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
    expect((await fetch(`${stack.workerUrl}/console/app.js`)).status).toBe(200);
    // The API itself is untouched: still JSON errors, still a bearer token.
    expect((await fetch(`${stack.workerUrl}/overview`)).status).toBe(401);
  });

  it("turns a wrong token away, and keeps the right one in the tab only: not in the URL, not in localStorage", async () => {
    const page = await newPage();
    await signIn(page, "not-a-token-of-this-deployment");
    await expect.poll(() => page.locator("#sign-in-error").textContent(), POLL).toContain("unauthorized");
    expect(await page.getByRole("heading", { name: "Sign in" }).isVisible()).toBe(true);

    await page.getByLabel("API token (viewer or admin)").fill(stack.secrets.ADMIN_TOKEN);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Protection overview" }).waitFor();
    expect(page.url()).not.toContain(stack.secrets.ADMIN_TOKEN);
    expect(await page.evaluate(() => { const w = globalThis as any; return [w.sessionStorage.length, w.localStorage.length, w.document.cookie]; })).toEqual([1, 0, ""]);
    expect(await page.locator("#who").textContent()).toMatch(/^Signed in as admin:[0-9a-f]{8}$/);
    await page.close();
  });

  it("an admin backs up now from the overview, watches its progress, and sees it as the newest restore point", async () => {
    const page = await newPage();
    await signIn(page, stack.secrets.ADMIN_TOKEN);
    await page.getByRole("heading", { name: "Protection overview" }).waitFor();
    const row = page.getByRole("row").filter({ hasText: "astrid" }).filter({ hasText: "Database" });
    await expect.poll(() => row.textContent(), POLL).toContain("no restore point");

    // Keyboard: the button opens the confirmation, focus moves into it, Escape closes it without acting.
    const button = page.getByRole("button", { name: "Back up astrid now" });
    await button.focus();
    await page.keyboard.press("Enter");
    const dialog = page.getByRole("dialog", { name: "Back up database astrid" });
    await dialog.waitFor();
    expect(await page.evaluate(() => { const d = (globalThis as any).document; return d.getElementById("confirm").contains(d.activeElement); })).toBe(true);
    expect(await page.locator("#confirm-what").textContent()).toContain('Starts a full backup of database "astrid" now');
    await page.keyboard.press("Escape");
    await dialog.waitFor({ state: "hidden" });
    expect((await stack.api("GET", "/jobs?kind=database.backup")).body.jobs).toEqual([]);

    await button.click();
    await page.getByLabel("Type").selectOption("full");
    await page.getByRole("button", { name: "Start backup" }).click();
    const { seen, final } = await watchJob(page);
    expect(final).toContain("Statussucceeded");
    // Progress was shown while it ran: the bytes dumped so far, and a rate.
    const moving = seen.filter((t) => t.includes("Statusrunning") && /Bytes[\d.]+ (KiB|MiB)/.test(t));
    expect(moving.length, seen.join("\n")).toBeGreaterThan(0);
    expect(moving.some((t) => /Rate[\d.]+ (B|KiB|MiB)\/s/.test(t)), moving.join("\n")).toBe(true);

    backupId = (await page.locator("#job-facts a[href^='#/backup/']").textContent())!;
    const listed = (await stack.api("GET", `/backups/${backupId}`)).body;
    expect(listed).toMatchObject({ backup_id: backupId, source: "astrid", type: "full", status: "completed" });
    expect(listed.logical_bytes).toBeGreaterThan(100_000);

    await page.getByRole("link", { name: "Overview" }).click();
    await page.getByRole("heading", { name: "Protection overview" }).waitFor();
    await expect.poll(() => row.locator(`a[href="#/backup/${backupId}"]`).count(), POLL).toBe(1);
    expect(await row.textContent()).not.toContain("no restore point");
    // The charts are drawn (uPlot canvases) from GET /stats/backups for the source with a backup.
    await expect.poll(() => page.locator("#charts canvas").count(), POLL).toBeGreaterThanOrEqual(3);
    expect(await page.locator("#chart-source option:checked").textContent()).toBe("Database astrid");

    // The audit log (admin only) names the backup it started.
    await page.getByRole("link", { name: "Audit log" }).click();
    await page.getByRole("heading", { name: "Audit log" }).waitFor();
    expect(await page.locator("main table").textContent()).toContain("database.backup");
    await page.close();
  });

  it("an admin restores the backup into a new database from its page, and the copy equals the source", async () => {
    const page = await newPage();
    await signIn(page, stack.secrets.ADMIN_TOKEN);
    await page.getByRole("heading", { name: "Protection overview" }).waitFor();
    const what = await openRestore(page, pg.url(copyName));
    expect(await page.locator("main").textContent()).toContain("Never restored.");
    expect(what).toContain(`Restores astrid's backup ${backupId} into`);
    expect(what).toContain("refused if that database is not empty");
    await page.getByRole("button", { name: "Restore", exact: true }).last().click();
    const { final } = await watchJob(page);
    expect(final).toContain("Statussucceeded");
    expect(await tableFingerprints(pg.url(copyName))).toEqual(await tableFingerprints(sourceUrl));

    await page.goto(`${stack.workerUrl}/console/#/backup/${backupId}`);
    await page.getByRole("heading", { name: "Restores" }).waitFor();
    await expect.poll(() => page.locator("section", { hasText: "Restores" }).locator("tbody tr").count(), POLL).toBe(1);
    await page.close();
  });

  it("a restore over a non-empty database without Replace fails, and the console shows its error code and the runbook's advice", async () => {
    const page = await newPage();
    await signIn(page, stack.secrets.ADMIN_TOKEN);
    await page.getByRole("heading", { name: "Protection overview" }).waitFor();
    await openRestore(page, pg.url(copyName));
    expect(await page.getByLabel(/^Replace/).isChecked()).toBe(false);
    await page.getByRole("button", { name: "Restore", exact: true }).last().click();
    const { final } = await watchJob(page);
    expect(final).toContain("Statusfailed");
    const error = page.locator("section", { has: page.getByRole("heading", { name: "Error" }) });
    expect(await error.locator("code.error-code").textContent()).toBe("target_not_empty");
    expect(await error.textContent()).toContain("pick an empty target or pass `replace: true`");
    const jobId = (await page.getByRole("heading", { name: /^Job / }).textContent())!.replace("Job ", "");

    await page.getByRole("link", { name: "Failed jobs" }).click();
    await page.getByRole("heading", { name: "Failed jobs" }).waitFor();
    const row = page.getByRole("row").filter({ has: page.locator(`a[href="#/job/${jobId}"]`) });
    expect(await row.locator("code.error-code").textContent()).toBe("target_not_empty");
    expect(await row.textContent()).toContain("A job failed"); // the runbook section it links
    // The copy was left as it was.
    expect(await tableFingerprints(pg.url(copyName))).toEqual(await tableFingerprints(sourceUrl));
    await page.close();
  });

  it("a viewer is offered no admin action, and the API refuses one anyway", async () => {
    const page = await newPage();
    await signIn(page, stack.secrets.VIEWER_TOKEN);
    await page.getByRole("heading", { name: "Protection overview" }).waitFor();
    expect(await page.locator("#who").textContent()).toMatch(/^Signed in as viewer:/);
    const adminButtons = /Back up|Run a drill|Rehearse|Restore|Verify/;
    expect(await page.getByRole("button", { name: adminButtons }).count()).toBe(0);
    expect(await page.getByRole("link", { name: "Audit log" }).isVisible()).toBe(false);
    expect(await page.getByRole("columnheader", { name: "Actions" }).count()).toBe(0);

    await page.goto(`${stack.workerUrl}/console/#/source/database/astrid`);
    await page.locator(`a[href="#/backup/${backupId}"]`).waitFor();
    expect(await page.getByRole("button", { name: adminButtons }).count()).toBe(0);
    await page.goto(`${stack.workerUrl}/console/#/backup/${backupId}`);
    await page.getByRole("heading", { name: "Manifest" }).waitFor();
    expect(await page.getByRole("button", { name: adminButtons }).count()).toBe(0);
    await page.goto(`${stack.workerUrl}/console/#/jobs`);
    await page.locator("#jobs-recent").getByText("database.backup").first().waitFor();

    const refused = await page.evaluate(async () => {
      const res = await fetch("/backup/database", {
        method: "POST", body: "{}", headers: { authorization: `Bearer ${(globalThis as any).sessionStorage.getItem("astrid-backup.token")}`, "content-type": "application/json" },
      });
      return [res.status, ((await res.json()) as any).error.code];
    });
    expect(refused).toEqual([403, "forbidden"]);
    await page.close();
  });

  it("charts each backup's logical, stored and new bytes from GET /stats/backups (an incremental adds little)", async () => {
    const incremental = await stack.api("POST", "/backup/database", { type: "incremental" });
    expect((await stack.waitForJob(incremental.body.job_id)).status).toBe("succeeded");
    const stats = (await stack.api("GET", "/stats/backups?domain=database&source=astrid&days=1", undefined, stack.secrets.VIEWER_TOKEN)).body;
    expect(stats.backups.map((b: any) => b.type)).toEqual(["full", "incremental"]);
    expect(stats.backups[1].new_bytes).toBeLessThan(stats.backups[1].logical_bytes / 2); // deduplicated against the full

    const page = await newPage(1280, 900);
    await signIn(page, stack.secrets.ADMIN_TOKEN);
    await page.getByRole("heading", { name: "Protection overview" }).waitFor();
    const size = page.getByRole("figure", { name: "Backup size: logical, stored, new" });
    await expect.poll(() => size.locator("canvas").count(), POLL).toBe(1);
    expect(await size.locator("figcaption").textContent()).toMatch(/^2 points; latest: logical [\d.]+ KiB, stored [\d.]+ KiB, new [\d.]+ (B|KiB)$/);
    await page.waitForTimeout(500); // let uPlot finish drawing every chart before the picture
    await page.screenshot({ path: join(ARTIFACTS, "console-overview.png"), fullPage: true });
    await page.close();
  });

  it("is usable at phone width: no sideways scrolling, rows as cards, actions within reach", async () => {
    const page = await newPage(390, 844);
    await signIn(page, stack.secrets.ADMIN_TOKEN);
    await page.getByRole("heading", { name: "Protection overview" }).waitFor();
    await expect.poll(() => page.locator("#charts canvas").count(), POLL).toBeGreaterThanOrEqual(3);
    expect(await page.evaluate(() => (globalThis as any).document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    const cell = page.getByRole("row").filter({ hasText: "astrid" }).filter({ hasText: "Database" }).locator("td").first();
    expect(await cell.evaluate((td) => (globalThis as any).getComputedStyle(td).display)).toBe("grid");
    const box = (await page.getByRole("button", { name: "Back up astrid now" }).boundingBox())!;
    expect(box.x).toBeGreaterThanOrEqual(0);
    expect(box.x + box.width).toBeLessThanOrEqual(390);
    await page.screenshot({ path: join(ARTIFACTS, "console-overview-phone.png"), fullPage: true });
    await page.close();
  });

  it("raised no script error and no Content-Security-Policy violation on any page", () => {
    expect(pageProblems).toEqual([]);
  });
});
