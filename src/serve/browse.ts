import type { ServerResponse } from "node:http";
import type { X25519Identity } from "../crypto/keys.js";
import { UsageError } from "../errors.js";
import { displayPath } from "../model/path-bytes.js";
import type { Repository, SnapshotObject } from "../repo/repository.js";
import { dumpFile } from "../restore/dump.js";
import { writeTar } from "../restore/tar.js";
import type { SnapshotCache } from "../snapshot/cache.js";
import { diffSnapshots, type Change } from "../snapshot/diff.js";
import { isoNs, modeString } from "../snapshot/entry-format.js";
import { compilePatterns } from "../snapshot/find-pattern.js";
import { children, isImplied, listTarget, type Listed } from "../snapshot/listing.js";
import { withSnapshot } from "../snapshot/open.js";
import type { SnapshotReader } from "../snapshot/read.js";
import { findEntry, findInEither, shownPath, snapshotPath } from "../snapshot/typed-path.js";

// The snapshot page's endpoints: the same code as `vaultik ls`, `find`, `diff` and `dump`
// (snapshot/listing.ts, find-pattern.ts, diff.ts, restore/dump.ts and tar.ts), answering JSON or
// streaming bytes. Listings are capped so one request cannot hold millions of rows.

export const LS_LIMIT = 10_000;
export const FIND_LIMIT = 1000;
export const DIFF_LIMIT = 5000;

export interface Browse {
  repo: Repository;
  identities: readonly X25519Identity[];
  cache?: SnapshotCache;
  signal: AbortSignal;
}

function open<T>(b: Browse, s: SnapshotObject, fn: (r: SnapshotReader) => Promise<T>): Promise<T> {
  return withSnapshot(b.repo, s, b.identities, fn, b.signal, { cache: b.cache });
}

type ShownType = "file" | "dir" | "symlink" | "other";
const shownType = (t: string): ShownType => (t === "file" || t === "dir" || t === "symlink" ? t : "other");

export function ls(b: Browse, s: SnapshotObject, typed: string): Promise<Record<string, unknown>> {
  return open(b, s, async (reader) => {
    const at = listTarget(reader, typed);
    const entries: Record<string, unknown>[] = [];
    let truncated = false;
    for (const e of at.type === "dir" ? children(reader, at.path) : [at]) {
      if (entries.length === LS_LIMIT) {
        truncated = true;
        break;
      }
      entries.push(entryJson(e));
    }
    return { id: s.id, path: shownPath(at.path), entries, truncated };
  });
}

function entryJson(e: Listed): Record<string, unknown> {
  const name = displayPath(e.path.slice(e.path.lastIndexOf("/") + 1));
  if (isImplied(e)) return { name, path: shownPath(e.path), type: "dir", size: null, mtime: null, mode: null, target: null, implied: true };
  return {
    name,
    path: shownPath(e.path),
    type: shownType(e.type),
    size: e.size,
    mtime: isoNs(e.mtimeNs),
    mode: modeString(e.type, e.mode),
    target: e.type === "symlink" && e.linkTarget !== null ? displayPath(e.linkTarget) : null,
    implied: false,
  };
}

export function find(b: Browse, s: SnapshotObject, pattern: string, under: string): Promise<Record<string, unknown>> {
  const compiled = compilePatterns([pattern], false);
  return open(b, s, async (reader) => {
    const matches: Record<string, unknown>[] = [];
    let truncated = false;
    const prefix = snapshotPath(under);
    for (const e of reader.search({ names: compiled.names, ...(prefix === "" ? {} : { under: prefix }) })) {
      if (!compiled.test(e.path)) continue;
      if (matches.length === FIND_LIMIT) {
        truncated = true;
        break;
      }
      matches.push({ path: shownPath(e.path), type: shownType(e.type), size: e.size, mtime: isoNs(e.mtimeNs) });
    }
    return { id: s.id, pattern, matches, truncated };
  });
}

const CHANGE: Record<Change["change"], string> = { added: "added", removed: "removed", content: "modified", type: "type", metadata: "metadata" };

export function diff(b: Browse, from: SnapshotObject, to: SnapshotObject, typed: string): Promise<Record<string, unknown>> {
  return open(b, from, (a) =>
    open(b, to, async (c) => {
      const prefix = findInEither(a, c, typed) || undefined;
      const gen = diffSnapshots(a, c, prefix);
      const changes: Record<string, unknown>[] = [];
      let r = gen.next();
      for (; !r.done; r = gen.next()) {
        if (changes.length === DIFF_LIMIT) return { from: from.id, to: to.id, changes, truncated: true, summary: null };
        const ch = r.value;
        changes.push({
          path: shownPath(ch.path),
          change: CHANGE[ch.change],
          type: shownType(ch.type),
          ...(ch.oldType === undefined ? {} : { oldType: shownType(ch.oldType) }),
          ...(ch.fields === undefined ? {} : { fields: ch.fields }),
        });
      }
      return { from: from.id, to: to.id, changes, truncated: false, summary: r.value };
    }),
  );
}

/** `attachment; filename="…"; filename*=UTF-8''…`, the plain name stripped to printable ASCII. */
export function attachment(name: string): string {
  const plain = name.replace(/[^\x20-\x7e]|["\\]/g, "_");
  return `attachment; filename="${plain}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

/** Streams a regular file's bytes; JSON errors only while no byte has gone out. */
export function file(b: Browse, s: SnapshotObject, typed: string, res: ServerResponse): Promise<void> {
  return open(b, s, async (reader) => {
    const entry = findEntry(reader, typed);
    if (entry.type !== "file") throw new UsageError("path", `${shownPath(entry.path)} is not a regular file (download a directory as tar)`);
    res.setHeader("Content-Type", "application/octet-stream");
    res.setHeader("Content-Length", String(entry.size));
    res.setHeader("Content-Disposition", attachment(displayPath(entry.path.slice(entry.path.lastIndexOf("/") + 1))));
    await dumpFile({ repo: b.repo, identities: b.identities, snapshot: reader, path: entry.path, out: res, signal: b.signal });
    res.end();
  });
}

/**
 * Streams a directory as tar (as `vaultik dump`). An entry that cannot be read aborts the
 * response: over HTTP there is no stderr to tell, and a cut-off archive fails loudly in tar.
 */
export function tar(b: Browse, s: SnapshotObject, typed: string, res: ServerResponse): Promise<void> {
  return open(b, s, async (reader) => {
    const at = listTarget(reader, typed);
    const base = at.path === "" ? "snapshot" : displayPath(at.path.slice(at.path.lastIndexOf("/") + 1));
    res.setHeader("Content-Type", "application/x-tar");
    res.setHeader("Content-Disposition", attachment(`${base}.tar`));
    let failure: string | undefined;
    await writeTar({
      repo: b.repo,
      identities: b.identities,
      snapshot: reader,
      prefix: at.path,
      out: res,
      signal: b.signal,
      skipped: (path, message) => (failure ??= `${shownPath(path)}: ${message}`),
      warn: () => {},
    });
    if (failure !== undefined) {
      res.destroy(new Error(`left out of the archive: ${failure}`));
      return;
    }
    res.end();
  });
}
