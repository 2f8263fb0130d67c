import { watch, type FSWatcher } from "chokidar";
import type { Excluder } from "../backup/exclude.js";
import { errorMessage } from "../errors.js";

// Marks paths dirty as the filesystem reports changes (inotify through chokidar). A watcher can
// miss events (overflowing queues, network filesystems), which is why the scheduler also does
// full scans; the dirty set only makes the runs in between cheaper and timelier.

export interface DirtyWatcher {
  /** Paths changed since the last `take`. */
  readonly size: number;
  /** Returns the dirty paths and starts a new set. */
  take(): Set<string>;
  /** Puts paths back (a run that used them failed). */
  restore(paths: Iterable<string>): void;
  ready: Promise<void>;
  close(): Promise<void>;
}

export function watchDirty(roots: readonly string[], exclude: Excluder, options: { onDirty: () => void; log: (line: string) => void }): DirtyWatcher {
  let dirty = new Set<string>();
  const watcher: FSWatcher = watch([...roots], {
    ignoreInitial: true,
    followSymlinks: false,
    persistent: true,
    ignored: (path: string, stats?: { isDirectory(): boolean }) => exclude(path, stats?.isDirectory() ?? false),
  });
  watcher.on("all", (_event: string, path: string) => {
    dirty.add(path);
    options.onDirty();
  });
  watcher.on("error", (err: unknown) => options.log(`watcher: ${errorMessage(err) ?? String(err)}`));
  const ready = new Promise<void>((resolve) => watcher.once("ready", () => resolve()));
  return {
    get size() {
      return dirty.size;
    },
    take() {
      const taken = dirty;
      dirty = new Set();
      return taken;
    },
    restore(paths) {
      for (const p of paths) dirty.add(p);
    },
    ready,
    close: () => watcher.close(),
  };
}
