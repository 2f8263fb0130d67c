import type { ChildProcess } from "node:child_process";
import type { Readable } from "node:stream";

// What running shell commands (hooks, command sources) needs beyond child_process: killing a
// whole process group, logging output line by line, and not waiting forever for pipes that a
// background grandchild keeps open.

/** After SIGTERM, how long a process group gets before SIGKILL. */
export const KILL_GRACE_MS = 5_000;
/** After the shell exits, how long we keep reading output a background child may hold open. */
export const DRAIN_GRACE_MS = 1_000;
/** Longer lines are cut, so one runaway line cannot grow the log without bound. */
export const MAX_LINE = 16 * 1024;

/** The spawn error's own message names the program (/bin/sh) and the code, never the arguments. */
export function startError(what: string, err: unknown): Error {
  const message = err instanceof Error ? err.message : String(err);
  return new Error(`${what} could not start: ${message}`, { cause: err });
}

/** SIGTERM to the child's process group, then SIGKILL to whatever is left after the grace. */
export function terminate(child: ChildProcess): void {
  const pid = child.pid;
  if (pid === undefined) return;
  signalGroup(pid, "SIGTERM");
  // Not cleared when the shell exits: a member of its group may ignore SIGTERM and outlive it.
  // Unref'd so nothing waits out the grace period before exiting.
  setTimeout(() => signalGroup(pid, "SIGKILL"), KILL_GRACE_MS).unref();
}

export function signalGroup(pgid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pgid, sig);
  } catch {
    // ESRCH: the whole group is already gone, which is what we wanted.
  }
}

/** Waits for the rest of the output, but at most DRAIN_GRACE_MS, then closes the streams. */
export async function drained(streams: Readable[], done: Promise<void>[]): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, DRAIN_GRACE_MS);
  });
  await Promise.race([Promise.all(done), grace]);
  clearTimeout(timer);
  for (const stream of streams) stream.destroy();
}

/** Passes each line of `stream` to `log` with `prefix`; resolves when the stream closes. */
export function logLines(stream: Readable, prefix: string, log: (line: string) => void): Promise<void> {
  stream.setEncoding("utf8");
  let partial = "";
  stream.on("data", (text: string) => {
    partial += text;
    let nl: number;
    while ((nl = partial.indexOf("\n")) >= 0) {
      log(prefix + partial.slice(0, nl).replace(/\r$/, ""));
      partial = partial.slice(nl + 1);
    }
    while (partial.length > MAX_LINE) {
      log(prefix + partial.slice(0, MAX_LINE));
      partial = partial.slice(MAX_LINE);
    }
  });
  // A read error on the pipe only loses log lines; the exit status still decides the outcome.
  stream.on("error", () => {});
  return new Promise((resolve) => {
    stream.once("close", () => {
      if (partial !== "") log(prefix + partial);
      partial = "";
      resolve();
    });
  });
}
