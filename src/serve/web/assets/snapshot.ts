// One snapshot: browse its tree (download a file, or a directory as tar), search it, and what
// changed since the host's previous snapshot.
import { api, downloads, links, type Change, type Entry, type SnapshotDetail, type Tab } from "./api.js";
import { h, replace } from "./dom.js";
import { bytes, count } from "./format.js";
import { setCrumbs, setUpdated, table, when } from "./ui.js";

interface Where {
  repo: string;
  id: string;
  path: string;
  tab: Tab;
  q: string;
}

export async function renderSnapshot(main: HTMLElement, where: Where, signal: AbortSignal): Promise<void> {
  const { repo, id } = where;
  setCrumbs(["Fleet", links.overview()], [repo], [id.split("_")[1] ?? "host"], [id]);
  const snap = await api.snapshot(repo, id, signal);
  setCrumbs(["Fleet", links.overview()], [repo], [snap.host, links.host(repo, snap.host)], [shortTime(snap.time)]);
  const now = Date.now();
  setUpdated(new Date(now).toISOString());
  const body = h("div", { class: "tab-body" }, h("p", { class: "muted" }, "Loading…"));
  replace(main, header(snap, now), tabs(where), body);
  if (where.tab === "files") await renderFiles(body, where, signal);
  else if (where.tab === "find") await renderFind(body, where, signal);
  else await renderDiff(body, snap, signal);
}

function shortTime(iso: string): string {
  return iso.replace("T", " ").replace(/\.\d+Z$|Z$/, " UTC");
}

function header(s: SnapshotDetail, now: number): HTMLElement {
  return h(
    "div",
    { class: "title" },
    h("h1", null, "Snapshot ", when(s.time, now)),
    h("p", { class: "mono muted" }, s.id),
    h(
      "p",
      { class: "facts" },
      fact("Host", h("a", { href: links.host(s.repo, s.host) }, s.host)),
      fact("Size", bytes(s.size)),
      fact("Files", count(s.files)),
      fact("New data", bytes(s.newBytes)),
      fact("Previous", s.previous ? h("a", { class: "mono", href: links.snapshot(s.repo, s.previous) }, shortTime(parseIdTime(s.previous))) : "none"),
      fact("Next", s.next ? h("a", { class: "mono", href: links.snapshot(s.repo, s.next) }, shortTime(parseIdTime(s.next))) : "none"),
    ),
  );
}

/** The time an id carries in clear (20261123T105529Z_…), for labelling neighbour links. */
function parseIdTime(id: string): string {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z/.exec(id);
  return m ? `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z` : id;
}

function fact(label: string, value: Node | string): HTMLElement {
  return h("span", { class: "fact" }, h("span", { class: "fact-label" }, label), value);
}

function tabs(w: Where): HTMLElement {
  const tab = (t: Tab, label: string) =>
    h("a", { class: t === w.tab ? "tab active" : "tab", href: links.snapshot(w.repo, w.id, { path: w.path, tab: t, q: t === "find" ? w.q : undefined }), "aria-current": t === w.tab ? "page" : undefined }, label);
  return h("nav", { class: "tabs" }, tab("files", "Files"), tab("find", "Search"), tab("diff", "Changes"));
}

/** How deep the page follows a chain of directories above the sources (/ → /home → /home/alice). */
const MAX_DESCENT = 64;

async function renderFiles(body: HTMLElement, w: Where, signal: AbortSignal): Promise<void> {
  let listing = await api.ls(w.repo, w.id, w.path, signal);
  // A snapshot's root holds only the directories above the backed-up sources: open it where
  // the tree branches (a chain of lone directories shows nothing to choose from), and put that
  // path in the address without a new history entry.
  for (let i = 0; w.path === "/" && i < MAX_DESCENT && listing.entries.length === 1 && listing.entries[0]!.type === "dir"; i++) {
    listing = await api.ls(w.repo, w.id, listing.entries[0]!.path, signal);
    history.replaceState(null, "", links.snapshot(w.repo, w.id, { path: listing.path }));
  }
  const rows: HTMLTableRowElement[] = [];
  if (listing.path !== "/") {
    rows.push(h("tr", { class: "entry parent" }, h("td", null, h("a", { href: links.snapshot(w.repo, w.id, { path: parent(listing.path) }) }, "↑ ..")), h("td"), h("td"), h("td"), h("td")));
  }
  for (const e of listing.entries) rows.push(entryRow(w, e));
  replace(
    body,
    h(
      "div",
      { class: "pathbar" },
      pathCrumbs(w, listing.path),
      h("a", { class: "button", href: downloads.tar(w.repo, w.id, listing.path), download: "" }, listing.path === "/" ? "Download all (.tar)" : "Download folder (.tar)"),
    ),
    table(["Name", ["Size", "num"], "Modified", "Mode", ""], rows, "Empty directory."),
    listing.truncated ? h("p", { class: "warn-text" }, `Only the first ${count(listing.entries.length)} entries are shown.`) : null,
  );
}

function entryRow(w: Where, e: Entry): HTMLTableRowElement {
  const now = Date.now();
  let name: HTMLElement;
  let action: HTMLElement | null = null;
  if (e.type === "dir") {
    name = h("a", { class: "entry-dir", href: links.snapshot(w.repo, w.id, { path: e.path }) }, e.name, "/");
    action = h("a", { class: "small", href: downloads.tar(w.repo, w.id, e.path), download: "", title: `Download ${e.path} as tar` }, ".tar");
  } else if (e.type === "file") {
    name = h("a", { class: "entry-file", href: downloads.file(w.repo, w.id, e.path), download: "", title: `Download ${e.path}` }, e.name);
    action = h("a", { class: "small", href: downloads.file(w.repo, w.id, e.path), download: "" }, "download");
  } else {
    name = h("span", { class: `entry-${e.type}` }, e.name, e.type === "symlink" && e.target ? h("span", { class: "muted" }, ` → ${e.target}`) : null);
  }
  return h(
    "tr",
    { class: `entry type-${e.type}`, "data-name": e.name },
    h("td", null, name, e.implied ? h("span", { class: "muted small" }, " (above the backed-up paths)") : null),
    h("td", { class: "num" }, e.type === "file" ? bytes(e.size) : ""),
    h("td", null, when(e.mtime, now)),
    h("td", { class: "mono muted" }, e.mode ?? ""),
    h("td", null, action),
  );
}

function parent(path: string): string {
  const i = path.lastIndexOf("/");
  return i <= 0 ? "/" : path.slice(0, i);
}

function pathCrumbs(w: Where, path: string): HTMLElement {
  const parts = path.split("/").filter((p) => p !== "");
  const items: (HTMLElement | string)[] = [h("a", { href: links.snapshot(w.repo, w.id) }, "/")];
  parts.forEach((p, i) => {
    const to = `/${parts.slice(0, i + 1).join("/")}`;
    if (i > 0) items.push(h("span", { class: "sep" }, "/"));
    items.push(i === parts.length - 1 ? h("strong", null, p) : h("a", { href: links.snapshot(w.repo, w.id, { path: to }) }, p));
  });
  return h("div", { class: "path mono" }, items);
}

async function renderFind(body: HTMLElement, w: Where, signal: AbortSignal): Promise<void> {
  // No <form>: the CSP's form-action 'none' forbids submitting one; the query lives in the hash.
  const input = h("input", { type: "search", name: "q", value: w.q, placeholder: "*.conf, or a path pattern like /etc/**/*.yml", "aria-label": "Pattern", autofocus: true });
  const go = () => {
    const q = input.value.trim();
    if (q !== "") location.hash = links.snapshot(w.repo, w.id, { tab: "find", q });
  };
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") go();
  });
  const bar = h("div", { class: "searchbar" }, input, h("button", { type: "button", onclick: go }, "Search"));
  if (w.q === "") {
    replace(body, bar, h("p", { class: "muted" }, "Patterns as `vaultik find`: a glob on the name, or on the whole path when it holds a /."));
    return;
  }
  replace(body, bar, h("p", { class: "muted" }, "Searching…"));
  const found = await api.find(w.repo, w.id, w.q, signal);
  const now = Date.now();
  const rows = found.matches.map((m) =>
    h(
      "tr",
      { class: `match type-${m.type}` },
      h(
        "td",
        { class: "mono" },
        m.type === "dir"
          ? h("a", { href: links.snapshot(w.repo, w.id, { path: m.path }) }, m.path, "/")
          : m.type === "file"
            ? h("a", { href: downloads.file(w.repo, w.id, m.path), download: "" }, m.path)
            : m.path,
      ),
      h("td", null, h("a", { class: "small", href: links.snapshot(w.repo, w.id, { path: parent(m.path) }) }, "open folder")),
      h("td", { class: "num" }, m.type === "file" ? bytes(m.size) : ""),
      h("td", null, when(m.mtime, now)),
    ),
  );
  replace(
    body,
    bar,
    h("p", { class: "muted" }, `${count(found.matches.length)}${found.truncated ? "+" : ""} match${found.matches.length === 1 ? "" : "es"} for `, h("span", { class: "mono" }, found.pattern)),
    table(["Path", "", ["Size", "num"], "Modified"], rows, "Nothing matches."),
  );
}

/** A changed path links to what this snapshot holds there: the file's bytes, or the directory. */
function changedPath(snap: SnapshotDetail, c: Change): Node | string {
  if (c.change === "removed") return c.type === "dir" ? `${c.path}/` : c.path;
  if (c.type === "file") return h("a", { href: downloads.file(snap.repo, snap.id, c.path), download: "" }, c.path);
  if (c.type === "dir") return h("a", { href: links.snapshot(snap.repo, snap.id, { path: c.path }) }, c.path, "/");
  return c.path;
}

const CHANGE_LABEL: Record<Change["change"], string> = { added: "added", removed: "removed", modified: "modified", type: "type changed", metadata: "metadata" };

async function renderDiff(body: HTMLElement, snap: SnapshotDetail, signal: AbortSignal): Promise<void> {
  const diff = await api.diff(snap.repo, snap.id, signal);
  if (diff.from === null) {
    replace(body, h("p", { class: "muted empty" }, "This is the host's first snapshot: nothing to compare with."));
    return;
  }
  const s = diff.summary;
  // What changed in content first, then metadata-only changes (a directory's mtime moves with
  // every file added to it); path order within each group, as `vaultik diff` prints.
  const ordered = [...diff.changes.filter((c) => c.change !== "metadata"), ...diff.changes.filter((c) => c.change === "metadata")];
  const rows = ordered.map((c) =>
    h(
      "tr",
      { class: `change change-${c.change}`, "data-path": c.path },
      h("td", null, h("span", { class: `tag tag-${c.change}` }, CHANGE_LABEL[c.change])),
      h("td", { class: "mono" }, changedPath(snap, c)),
      h("td", { class: "muted" }, c.oldType ? `${c.oldType} → ${c.type}` : (c.fields ?? []).join(", ")),
    ),
  );
  replace(
    body,
    h(
      "p",
      null,
      "Changes since ",
      h("a", { class: "mono", href: links.snapshot(snap.repo, diff.from) }, diff.from),
      s
        ? ` — files: ${count(s.files.new)} new, ${count(s.files.changed)} changed, ${count(s.files.removed)} removed; stored data: +${bytes(s.added.stored)} / −${bytes(s.removed.stored)}`
        : "",
    ),
    table(["Change", "Path", "Details"], rows, "No changes."),
    diff.truncated ? h("p", { class: "warn-text" }, `Only the first ${count(diff.changes.length)} changes are shown.`) : null,
  );
}

