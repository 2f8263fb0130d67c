import { spawn, type ChildProcess } from "node:child_process";
import { drained, logLines, startError, terminate } from "../util/child.js";

// The pre_backup and post_backup hooks: a user's shell command (stop a service, ping a
// health-check URL) run around each backup. Whether a failing hook fails the backup is the
// caller's policy, so a hook's exit status is returned, never thrown.

export type HookName = "pre_backup" | "post_backup";

export interface HookOptions {
  /** How long the hook may run before its whole process group is killed. */
  timeoutMs: number;
  /** Added to this process's environment, e.g. `VAULTIK_STATUS` for post_backup. */
  env?: Record<string, string>;
  /** Receives each line of the hook's stdout and stderr, prefixed `[hook <name>] `. */
  log: (line: string) => void;
  /** Stops the hook like a timeout does; runHook then rejects with the signal's reason. */
  signal?: AbortSignal;
}

export interface HookResult {
  /** Exit code, or null when the shell was killed by a signal. */
  code: number | null;
  signal: string | null;
  timedOut: boolean;
  durationMs: number;
}

/** How long a hook may take to die after SIGTERM before it gets SIGKILL. */
/** How long to keep logging output after the shell exited, for a background child holding it. */
/** An output "line" longer than this is logged in pieces, so binary noise cannot fill memory. */

/**
 * Runs `command` under `/bin/sh -c`, logging its output line by line. Resolves with how it
 * ended, whatever that was; rejects only when the shell cannot be started, or when `signal`
 * aborts (after the hook has been stopped).
 */
export async function runHook(name: HookName, command: string, options: HookOptions): Promise<HookResult> {
  const { signal, log } = options;
  signal?.throwIfAborted();
  const prefix = `[hook ${name}] `;
  const started = performance.now();

  let child: ChildProcess;
  try {
    // Own process group (detached), so a timeout also reaches what the hook started in the
    // background (`sleep 100 &`, a pipeline): sh does not pass SIGTERM on to its children.
    child = spawn("/bin/sh", ["-c", command], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...options.env },
      detached: true,
    });
  } catch (err) {
    throw startError(`hook ${name}`, err);
  }
  const outputs = [child.stdout!, child.stderr!];
  const logged = outputs.map((stream) => logLines(stream, prefix, log));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once("exit", (code, sig) => resolve({ code, signal: sig }));
    // "error" also reports failed kill() calls on a running child; only a child without a pid
    // failed to start, and for it "exit" never comes.
    child.on("error", (err) => {
      if (child.pid === undefined) reject(startError(`hook ${name}`, err));
    });
  });

  let timedOut = false;
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    terminate(child);
  };
  const timer = setTimeout(() => {
    timedOut = true;
    log(`${prefix}timed out after ${options.timeoutMs} ms, stopping it`);
    stop();
  }, options.timeoutMs);
  signal?.addEventListener("abort", stop, { once: true });

  try {
    const exit = await exited;
    const durationMs = performance.now() - started;
    // Decided at exit: an abort arriving while the last output drains changes nothing.
    const aborted = stopping && !timedOut;
    clearTimeout(timer);
    signal?.removeEventListener("abort", stop);
    await drained(outputs, logged);
    if (aborted) throw signal?.reason;
    return { code: exit.code, signal: exit.signal, timedOut, durationMs };
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", stop);
    for (const stream of outputs) stream.destroy();
  }
}

