// The JSON API of docs/SERVE.md, typed as the page reads it, and the page's own routes.

export interface LastRun {
  state: "running" | "finished" | "abandoned";
  id: string;
  started: string;
  lastBeat: string | null;
}

export type Status = "ok" | "stale" | "error";

export interface Overview {
  generatedAt: string;
  pollErrors: number;
  repositories: { repo: string; location: string; lastPoll: string | null; error: string | null; totals: { hosts: number; snapshots: number; bytes: number } }[];
  hosts: OverviewHost[];
}

export interface OverviewHost {
  repo: string;
  host: string;
  status: Status;
  staleAfterSeconds: number;
  latest: { id: string; time: string; ageSeconds: number; size: number | null; newBytes: number | null; files: number | null } | null;
  snapshots: number;
  lastRun: LastRun | null;
}

export interface SnapshotSummary {
  id: string;
  time: string;
  size: number | null;
  newBytes: number | null;
  files: number | null;
}

export interface HostDetail {
  repo: string;
  host: string;
  status: Status;
  staleAfterSeconds: number;
  snapshots: SnapshotSummary[];
  lastRun: LastRun | null;
  retention: { policy: Record<string, unknown> | null; keep: string[]; forget: string[]; reasons?: Record<string, string[]> };
  check: { time: string; ok: boolean; summary: string } | null;
}

export interface SnapshotDetail extends SnapshotSummary {
  repo: string;
  host: string;
  previous: string | null;
  next: string | null;
}

export type EntryType = "file" | "dir" | "symlink" | "other";

export interface Entry {
  name: string;
  path: string;
  type: EntryType;
  size: number | null;
  mtime: string | null;
  mode: string | null;
  target?: string | null;
  implied?: boolean;
}

export interface Listing {
  id: string;
  path: string;
  entries: Entry[];
  truncated: boolean;
}

export interface FindResult {
  id: string;
  pattern: string;
  matches: { path: string; type: EntryType; size: number | null; mtime: string | null }[];
  truncated: boolean;
}

export interface Change {
  path: string;
  change: "added" | "removed" | "modified" | "type" | "metadata";
  type: EntryType;
  oldType?: EntryType;
  fields?: string[];
}

export interface Diff {
  from: string | null;
  to: string;
  changes: Change[];
  truncated: boolean;
  summary: {
    files: { new: number; removed: number; changed: number };
    added: { stored: number };
    removed: { stored: number };
  } | null;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const enc = encodeURIComponent;

function query(params: Record<string, string | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, v);
  const s = q.toString();
  return s === "" ? "" : `?${s}`;
}

async function get<T>(url: string, signal?: AbortSignal): Promise<T> {
  const res = await fetch(url, { headers: { accept: "application/json" }, signal });
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`;
    try {
      message = ((await res.json()) as { error?: string }).error ?? message;
    } catch {
      // not JSON: keep the status line
    }
    throw new ApiError(res.status, message);
  }
  return (await res.json()) as T;
}

const snap = (repo: string, id: string) => `/api/repos/${enc(repo)}/snapshots/${enc(id)}`;

export const api = {
  overview: (signal?: AbortSignal) => get<Overview>("/api/overview", signal),
  host: (repo: string, host: string, signal?: AbortSignal) => get<HostDetail>(`/api/repos/${enc(repo)}/hosts/${enc(host)}`, signal),
  snapshot: (repo: string, id: string, signal?: AbortSignal) => get<SnapshotDetail>(snap(repo, id), signal),
  ls: (repo: string, id: string, path: string, signal?: AbortSignal) => get<Listing>(`${snap(repo, id)}/ls${query({ path })}`, signal),
  find: (repo: string, id: string, q: string, signal?: AbortSignal) => get<FindResult>(`${snap(repo, id)}/find${query({ q })}`, signal),
  diff: (repo: string, id: string, signal?: AbortSignal) => get<Diff>(`${snap(repo, id)}/diff`, signal),
};

export const downloads = {
  file: (repo: string, id: string, path: string) => `${snap(repo, id)}/file${query({ path })}`,
  tar: (repo: string, id: string, path: string) => `${snap(repo, id)}/tar${query({ path })}`,
};

// Routes: #/ , #/r/:repo/h/:host , #/r/:repo/s/:id?path=/a&tab=files|find|diff&q=…
export type Tab = "files" | "find" | "diff";
export type Route =
  | { view: "overview" }
  | { view: "host"; repo: string; host: string }
  | { view: "snapshot"; repo: string; id: string; path: string; tab: Tab; q: string }
  | { view: "missing"; hash: string };

export function parseRoute(hash: string): Route {
  const raw = hash.replace(/^#/, "");
  const [pathPart = "", queryPart = ""] = raw.split(/\?(.*)/s, 2);
  const parts = pathPart.split("/").filter((p) => p !== "").map((p) => decodeURIComponent(p));
  if (parts.length === 0) return { view: "overview" };
  if (parts.length === 4 && parts[0] === "r" && parts[2] === "h") return { view: "host", repo: parts[1]!, host: parts[3]! };
  if (parts.length === 4 && parts[0] === "r" && parts[2] === "s") {
    const q = new URLSearchParams(queryPart);
    const tab = q.get("tab");
    return {
      view: "snapshot",
      repo: parts[1]!,
      id: parts[3]!,
      path: q.get("path") || "/",
      tab: tab === "find" || tab === "diff" ? tab : "files",
      q: q.get("q") ?? "",
    };
  }
  return { view: "missing", hash: raw };
}

export const links = {
  overview: () => "#/",
  host: (repo: string, host: string) => `#/r/${enc(repo)}/h/${enc(host)}`,
  snapshot: (repo: string, id: string, opts: { path?: string; tab?: Tab; q?: string } = {}) =>
    `#/r/${enc(repo)}/s/${enc(id)}${query({ path: opts.path && opts.path !== "/" ? opts.path : undefined, tab: opts.tab && opts.tab !== "files" ? opts.tab : undefined, q: opts.q || undefined })}`,
};
