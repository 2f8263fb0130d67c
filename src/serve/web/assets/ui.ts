// Pieces every view shows the same way: times, status lights, run states, breadcrumbs.
import type { LastRun } from "./api.js";
import { h, replace, type Child } from "./dom.js";
import { absolute, age, ago } from "./format.js";
import type { Light } from "./status.js";

/** "3 h ago", the absolute time on hover. */
export function when(iso: string | null | undefined, now: number): HTMLElement | string {
  if (!iso) return "—";
  return h("time", { datetime: iso, title: absolute(iso) }, ago(age(iso, now)));
}

export function statusBadge(l: { light: Light; label: string }): HTMLElement {
  return h("span", { class: `status light-${l.light}` }, h("span", { class: "dot", "aria-hidden": "true" }), l.label);
}

export function runState(run: LastRun | null, now: number): HTMLElement | string {
  if (!run) return h("span", { class: "muted" }, "none recorded");
  const cls = run.state === "abandoned" ? "run run-abandoned" : run.state === "running" ? "run run-running" : "run run-finished";
  return h("span", { class: cls, title: `run ${run.id}, started ${absolute(run.started)}` }, run.state, " ", h("span", { class: "muted" }, when(run.lastBeat ?? run.started, now)));
}

export function setCrumbs(...items: [label: string, href?: string][]): void {
  const nav = document.getElementById("crumbs")!;
  const parts: Child[] = [];
  items.forEach(([label, href], i) => {
    if (i > 0) parts.push(h("span", { class: "sep", "aria-hidden": "true" }, "/"));
    parts.push(href ? h("a", { href }, label) : h("span", { "aria-current": "page" }, label));
  });
  replace(nav, ...parts);
}

export function setUpdated(iso: string | null): void {
  const el = document.getElementById("updated")!;
  replace(el, iso ? h("span", { title: absolute(iso) }, `updated ${new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })}`) : null);
}

export function section(title: Child, ...body: (Child | Child[])[]): HTMLElement {
  return h("section", { class: "card" }, h("h2", null, title), ...body);
}

export function table(headers: (string | [string, string])[], rows: HTMLTableRowElement[], empty: string): HTMLElement {
  if (rows.length === 0) return h("p", { class: "muted empty" }, empty);
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      null,
      h("thead", null, h("tr", null, headers.map((x) => (typeof x === "string" ? h("th", null, x) : h("th", { class: x[1] }, x[0]))))),
      h("tbody", null, rows),
    ),
  );
}
