// Alerts: stored state per alert key (dr_alerts), so an alert is sent when it
// starts firing and once more when it resolves, never on every evaluation.
// Webhooks get Slack-compatible JSON ({text}) when the URL is a Slack incoming
// webhook (hooks.slack.com, or any URL ending in #slack), a generic JSON body
// otherwise. A webhook that fails is retried, then logged by host only (the
// URL itself is a secret), and never fails the job that raised the alert.
import type { KindContext } from "../context.ts";
import { openDrStore } from "./runs.ts";
import { drSettings, type DrSettings } from "./settings.ts";

export interface Alert {
  key: string;
  kind: string;
  source: string;
  summary: string;
}

const ATTEMPTS = 3;
const TIMEOUT_MS = 5000;

/** Moves the alert to firing (or resolved) and notifies only on the transition. */
export async function setAlert(ctx: KindContext, alert: Alert, firing: boolean): Promise<"fired" | "resolved" | "unchanged"> {
  const store = openDrStore(ctx.env.CATALOG);
  const now = ctx.now.toISOString();
  let settings: DrSettings;
  try {
    settings = drSettings(ctx.config);
  } catch (e) {
    console.error(`alerts: ${(e as Error).message}`);
    return "unchanged";
  }
  if (firing ? await store.fire(alert, now) : await store.resolve(alert.key, now)) {
    await notify(settings, alert, firing ? "firing" : "resolved", now);
    return firing ? "fired" : "resolved";
  }
  return "unchanged";
}

async function notify(settings: DrSettings, alert: Alert, status: "firing" | "resolved", at: string): Promise<void> {
  const text = `${status === "firing" ? ":rotating_light: FIRING" : ":white_check_mark: RESOLVED"} [astrid-backup] ${alert.kind} ${alert.source}: ${alert.summary}`;
  await Promise.all(settings.webhooks.map((url) => {
    const slack = new URL(url).hostname === "hooks.slack.com" || url.endsWith("#slack");
    const body = slack ? { text } : { status, at, alert: { key: alert.key, kind: alert.kind, source: alert.source, summary: alert.summary }, service: "astrid-backup" };
    return post(url.replace(/#slack$/, ""), body);
  }));
}

/** POSTs JSON with retries; logs (host only) and swallows the final failure. */
export async function post(url: string, body: unknown, method = "POST"): Promise<boolean> {
  let last = "";
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    try {
      const res = await fetch(url, {
        method, ...(method === "POST" ? { headers: { "content-type": "application/json" }, body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
      await res.body?.cancel();
      if (res.ok) return true;
      last = `HTTP ${res.status}`;
    } catch (e) {
      last = (e as Error).name;
    }
    if (attempt < ATTEMPTS) await new Promise((r) => setTimeout(r, 200 * attempt));
  }
  console.error(`alert webhook to ${new URL(url).host} failed after ${ATTEMPTS} attempts: ${last}`);
  return false;
}

/** The dead-man's-switch ping (healthchecks.io style) after a successful scheduled run. */
export async function pingDeadman(ctx: KindContext): Promise<void> {
  try {
    const url = drSettings(ctx.config).deadman_url;
    if (url) await post(url, undefined, "GET");
  } catch (e) {
    console.error(`dead-man ping: ${(e as Error).message}`);
  }
}
