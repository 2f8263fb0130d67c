import { parentPort, workerData } from "node:worker_threads";
import { copyLiveDatabase } from "./sqlite.js";

// One online-backup copy of an application's SQLite database (sqlite.ts copyLiveDatabase), on a
// thread of its own: the copy runs in one step, which on the main thread would stop the
// daemon's status server, watcher and uploads for as long as a large database takes to copy.

const { source, dest } = workerData as { source: string; dest: string };
copyLiveDatabase(source, dest).then(
  () => parentPort!.postMessage({ ok: true }),
  (err: unknown) => parentPort!.postMessage({ ok: false, message: err instanceof Error ? err.message : String(err) }),
);
