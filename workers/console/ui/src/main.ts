// The operator's console: sign-in, then hash-routed pages (no secret ever
// in a URL: the token stays in sessionStorage).
import { api, ApiError, session } from "./api.ts";
import { disposeCharts } from "./charts.ts";
import { h } from "./dom.ts";
import * as views from "./views.ts";

const main = document.getElementById("main") as HTMLElement;
const nav = document.getElementById("nav") as HTMLElement;
const who = document.getElementById("who") as HTMLElement;
const signOut = document.getElementById("sign-out") as HTMLButtonElement;
const announce = document.getElementById("announce") as HTMLElement;

let role: "admin" | "viewer" | null = null;
let stopPage: (() => void) | void;

function signInPage(message = ""): void {
  nav.hidden = true;
  signOut.hidden = true;
  who.textContent = "";
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true, "aria-describedby": "token-hint" });
  const error = h("p", { class: "error", role: "alert", id: "sign-in-error" }, message);
  const form = h("form", { id: "sign-in" },
    h("label", { for: "token" }, "API token (viewer or admin)"), input,
    h("p", { class: "muted", id: "token-hint" }, "Kept in this tab only (sessionStorage); closing the tab signs you out."),
    error, h("button", { type: "submit", class: "primary" }, "Sign in"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    session.signIn(input.value.trim());
    void start();
  });
  main.replaceChildren(h("h1", {}, "Sign in"), form);
  input.focus();
}

type Route = (page: views.Page, ...args: string[]) => Promise<views.Stop>;
const ROUTES: [RegExp, Route, boolean?][] = [
  [/^#\/overview$/, views.overview],
  [/^#\/source\/([a-z_]+)\/(.+)$/, views.source],
  [/^#\/backup\/(.+)$/, views.backup],
  [/^#\/snapshot\/(.+)$/, views.snapshot],
  [/^#\/jobs$/, views.jobs],
  [/^#\/failed$/, views.failed],
  [/^#\/job\/(.+)$/, views.job],
  [/^#\/audit$/, views.audit, true],
];

async function render(): Promise<void> {
  if (typeof stopPage === "function") stopPage();
  stopPage = undefined;
  disposeCharts();
  const hash = location.hash || "#/overview";
  const found = ROUTES.find(([re, , adminOnly]) => re.test(hash) && (!adminOnly || role === "admin"));
  if (!found) {
    location.hash = "#/overview";
    return;
  }
  for (const a of nav.querySelectorAll("a")) {
    if (hash.startsWith(a.getAttribute("href")!)) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const args = found[0].exec(hash)!.slice(1).map(decodeURIComponent);
  main.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  try {
    stopPage = await found[1]({ main, admin: role === "admin" }, ...args);
    const title = main.querySelector("h1");
    announce.textContent = title?.textContent ?? "";
    (title ?? main).focus();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      session.signOut();
      signInPage(`Signed out: ${err.message}`);
      return;
    }
    main.replaceChildren(h("h1", {}, "Something went wrong"), h("p", { class: "error", role: "alert" }, err instanceof ApiError ? `${err.code}: ${err.message}` : String(err)));
  }
}

async function start(): Promise<void> {
  if (!session.token()) return signInPage();
  try {
    // /overview says who the token is (and the Cloudflare Access person, when Access is in front).
    const { signed_in } = await api("GET", "/overview");
    role = signed_in.role;
    who.textContent = `Signed in as ${signed_in.actor}`;
  } catch (err) {
    session.signOut();
    return signInPage(err instanceof ApiError ? `Sign-in failed: ${err.code} (${err.message})` : "Sign-in failed: the API did not answer");
  }
  document.body.dataset.role = role ?? "";
  nav.hidden = false;
  signOut.hidden = false;
  for (const el of document.querySelectorAll<HTMLElement>("[data-admin]")) el.hidden = role !== "admin";
  await render();
}

signOut.addEventListener("click", () => {
  session.signOut();
  role = null;
  if (typeof stopPage === "function") stopPage();
  signInPage("Signed out.");
});
window.addEventListener("hashchange", () => { if (role) void render(); });
void start();
