// The fleet: one row per host, problems first (the server's order), and the repositories' totals.
import { api, links, type Overview, type OverviewHost } from "./api.js";
import { h, replace } from "./dom.js";
import { bytes, count, duration } from "./format.js";
import { light } from "./status.js";
import { runState, section, setCrumbs, setUpdated, statusBadge, table, when } from "./ui.js";

export async function renderOverview(main: HTMLElement, signal: AbortSignal): Promise<void> {
  setCrumbs(["Fleet"]);
  const data = await api.overview(signal);
  const now = Date.parse(data.generatedAt);
  setUpdated(data.generatedAt);
  const lights = data.hosts.map((x) => light(x.status, x.latest?.ageSeconds ?? null, x.staleAfterSeconds));
  const red = lights.filter((l) => l.light === "red").length;
  const amber = lights.filter((l) => l.light === "amber").length;
  const abandoned = data.hosts.filter((x) => x.lastRun?.state === "abandoned").length;

  replace(
    main,
    h(
      "div",
      { class: "tiles" },
      tile("Hosts", count(data.hosts.length)),
      tile("Stale or failing", count(red), red > 0 ? "bad" : "good"),
      tile("Ageing", count(amber), amber > 0 ? "warn" : "good"),
      tile("Abandoned runs", count(abandoned), abandoned > 0 ? "warn" : "good"),
      tile("Snapshots", count(data.repositories.reduce((n, r) => n + r.totals.snapshots, 0))),
      tile("In the latest snapshots", bytes(data.repositories.reduce((n, r) => n + r.totals.bytes, 0))),
    ),
    section(
      "Hosts",
      table(
        ["Status", "Host", "Repository", ["Latest snapshot", ""], ["Snapshots", "num"], ["Latest size", "num"], ["New in latest", "num"], "Last run"],
        data.hosts.map((x, i) => hostRow(x, lights[i]!, now)),
        "No snapshots in any repository yet.",
      ),
    ),
    section(
      "Repositories",
      table(
        ["Repository", "Location", ["Hosts", "num"], ["Snapshots", "num"], ["Latest sizes", "num"], "Last poll"],
        data.repositories.map((r) => repoRow(r, now)),
        "No repository configured.",
      ),
      data.pollErrors > 0 ? h("p", { class: "bad-text" }, `${data.pollErrors} failed poll${data.pollErrors === 1 ? "" : "s"} since the server started.`) : null,
    ),
  );
}

function tile(label: string, value: string, tone = ""): HTMLElement {
  return h("div", { class: `tile ${tone}` }, h("div", { class: "tile-value" }, value), h("div", { class: "tile-label" }, label));
}

function hostRow(x: OverviewHost, l: ReturnType<typeof light>, now: number): HTMLTableRowElement {
  const staleNote = `stale after ${duration(x.staleAfterSeconds)}`;
  return h(
    "tr",
    { class: `host light-${l.light}`, "data-host": x.host, "data-repo": x.repo },
    h("td", { title: staleNote }, statusBadge(l)),
    h("td", null, h("a", { class: "host-link", href: links.host(x.repo, x.host) }, x.host)),
    h("td", { class: "muted" }, x.repo),
    h("td", null, x.latest ? h("a", { href: links.snapshot(x.repo, x.latest.id) }, when(x.latest.time, now)) : h("span", { class: "bad-text" }, "never"), h("div", { class: "sub" }, staleNote)),
    h("td", { class: "num" }, count(x.snapshots)),
    h("td", { class: "num" }, bytes(x.latest?.size)),
    h("td", { class: "num" }, bytes(x.latest?.newBytes)),
    h("td", null, runState(x.lastRun, now)),
  );
}

function repoRow(r: Overview["repositories"][number], now: number): HTMLTableRowElement {
  return h(
    "tr",
    { class: r.error ? "light-red" : "" },
    h("td", null, r.repo),
    h("td", { class: "mono" }, r.location, r.error ? h("div", { class: "bad-text" }, r.error) : null),
    h("td", { class: "num" }, count(r.totals.hosts)),
    h("td", { class: "num" }, count(r.totals.snapshots)),
    h("td", { class: "num" }, bytes(r.totals.bytes)),
    h("td", null, when(r.lastPoll, now)),
  );
}
