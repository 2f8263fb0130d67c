// One host: its snapshots over time, what prune would forget, the last check.
import { api, links, type HostDetail } from "./api.js";
import { sizeChart } from "./chart.js";
import { h, replace } from "./dom.js";
import { bytes, count, duration } from "./format.js";
import { light } from "./status.js";
import { runState, section, setCrumbs, setUpdated, statusBadge, table, when } from "./ui.js";

export async function renderHost(main: HTMLElement, repo: string, host: string, signal: AbortSignal): Promise<void> {
  setCrumbs(["Fleet", links.overview()], [repo], [host]);
  const data = await api.host(repo, host, signal);
  const now = Date.now();
  setUpdated(new Date(now).toISOString());
  const latest = data.snapshots.at(-1) ?? null;
  const l = light(data.status, latest ? (now - Date.parse(latest.time)) / 1000 : null, data.staleAfterSeconds);

  replace(
    main,
    h(
      "div",
      { class: "title" },
      h("h1", null, host),
      statusBadge(l),
      h(
        "p",
        { class: "muted" },
        `${count(data.snapshots.length)} snapshot${data.snapshots.length === 1 ? "" : "s"} in ${repo} · latest `,
        latest ? when(latest.time, now) : "never",
        ` · stale after ${duration(data.staleAfterSeconds)} · last run: `,
        runState(data.lastRun, now),
      ),
    ),
    section("Size and new data per snapshot", data.snapshots.length > 0 ? sizeChart(data.snapshots) : h("p", { class: "muted empty" }, "No snapshot yet.")),
    h("div", { class: "cols" }, retentionCard(data), checkCard(data, now)),
    section("Snapshots", snapshotTable(data, now)),
  );
}

function retentionCard(data: HostDetail): HTMLElement {
  const { policy, forget } = data.retention;
  if (policy === null) return section("Retention preview", h("p", { class: "muted" }, "No retention policy configured: prune would keep every snapshot."), h("p", { class: "retention-summary" }, "Nothing would be forgotten."));
  const rules = Object.entries(policy)
    .filter(([, v]) => v !== null && v !== undefined && v !== 0)
    // As the config file spells them (keepLast from the API is retention.keep_last there).
    .map(([k, v]) => `${k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}: ${String(v)}`)
    .join(", ");
  return section(
    "Retention preview",
    h("p", { class: "muted" }, "Policy: ", h("span", { class: "mono retention-policy" }, rules || "none")),
    h(
      "p",
      { class: "retention-summary" },
      forget.length === 0 ? "prune would forget nothing." : `prune would forget ${forget.length} of ${data.snapshots.length} snapshots:`,
    ),
    forget.length > 0
      ? h(
          "ul",
          { class: "forget-list" },
          forget.map((id) => h("li", null, h("a", { class: "mono", href: links.snapshot(data.repo, id) }, id))),
        )
      : null,
  );
}

function checkCard(data: HostDetail, now: number): HTMLElement {
  const c = data.check;
  if (c === null) return section("Last check", h("p", { class: "muted" }, "No ", h("code", null, "vaultik check"), " of this repository recorded on this machine."));
  return section(
    "Last check",
    h("p", null, h("span", { class: c.ok ? "check check-ok" : "check check-bad" }, c.ok ? "passed" : "FAILED"), " ", when(c.time, now)),
    h("p", { class: "mono check-summary" }, c.summary),
  );
}

function snapshotTable(data: HostDetail, now: number): HTMLElement {
  const forget = new Set(data.retention.forget);
  const reasons = data.retention.reasons ?? {};
  const rows = [...data.snapshots].reverse().map((s) =>
    h(
      "tr",
      { class: forget.has(s.id) ? "snap forgotten" : "snap" },
      h("td", null, h("a", { href: links.snapshot(data.repo, s.id) }, when(s.time, now))),
      h("td", { class: "mono" }, h("a", { class: "snap-id", href: links.snapshot(data.repo, s.id) }, s.id)),
      h("td", { class: "num" }, bytes(s.size)),
      h("td", { class: "num" }, bytes(s.newBytes)),
      h("td", { class: "num" }, count(s.files)),
      h(
        "td",
        null,
        forget.has(s.id) ? h("span", { class: "tag tag-forget" }, "would forget") : h("span", { class: "tag tag-keep", title: (reasons[s.id] ?? []).join(", ") }, "keep"),
      ),
    ),
  );
  return table(["Time", "Snapshot", ["Size", "num"], ["New data", "num"], ["Files", "num"], "Retention"], rows, "No snapshot yet.");
}
