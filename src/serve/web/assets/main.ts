// The page's router: one view per location.hash, each rendered from the JSON API. When a view
// is done, <main> gets aria-busy="false" and data-view, which tests and screen readers wait for.
import { ApiError, links, parseRoute } from "./api.js";
import { h, replace } from "./dom.js";
import { renderHost } from "./host.js";
import { renderOverview } from "./overview.js";
import { renderSnapshot } from "./snapshot.js";
import { setCrumbs } from "./ui.js";

const REFRESH_MS = 60_000;
const main = document.getElementById("main")!;
let current: AbortController | null = null;

async function show(): Promise<void> {
  current?.abort();
  const controller = new AbortController();
  current = controller;
  const route = parseRoute(location.hash);
  main.setAttribute("aria-busy", "true");
  try {
    if (route.view === "overview") await renderOverview(main, controller.signal);
    else if (route.view === "host") await renderHost(main, route.repo, route.host, controller.signal);
    else if (route.view === "snapshot") await renderSnapshot(main, route, controller.signal);
    else {
      setCrumbs(["Fleet", links.overview()]);
      replace(main, failure(`No page at #${route.hash}.`));
    }
  } catch (err) {
    if (controller.signal.aborted) return;
    const message = err instanceof ApiError ? `${err.message} (HTTP ${err.status})` : err instanceof Error ? err.message : String(err);
    replace(main, failure(message));
  }
  if (controller.signal.aborted) return;
  main.dataset["view"] = route.view;
  main.setAttribute("aria-busy", "false");
  document.title = `${document.getElementById("crumbs")?.textContent?.replace(/\//g, " / ") || "Fleet"} · vaultik`;
}

function failure(message: string): HTMLElement {
  return h("section", { class: "card error-card" }, h("h2", null, "Could not load this page"), h("p", { class: "mono" }, message), h("p", null, h("a", { href: links.overview() }, "Back to the fleet")));
}

window.addEventListener("hashchange", () => void show());
// The overview is a dashboard left open on a screen: refresh it while it is visible.
setInterval(() => {
  if (document.visibilityState === "visible" && parseRoute(location.hash).view === "overview" && main.getAttribute("aria-busy") === "false") void show();
}, REFRESH_MS);
void show();
