import { spawn, type ChildProcess } from "node:child_process";
import type { StreamSource } from "./archiver.js";
import type { CommandSettings } from "./settings.js";
import { drained, logLines, startError, terminate } from "../util/child.js";

// A configured command (`pg_dump mydb`, `mysqldump --all-databases`) whose standard output is
// stored in the snapshot as one file. The output goes straight from the pipe into the chunker:
// a dump can be far larger than memory or the spool directory, so it is never collected.
//
// The command line may hold credentials (`PGPASSWORD=… pg_dump`), so every message names the
// command by its configured `name` and never shows `run`.

/** How long a command may take to die after SIGTERM before it gets SIGKILL. */
/** How long to keep logging stderr after the command exited, for a background child holding it. */
/** A stderr "line" longer than this is logged in pieces, so binary noise cannot fill memory. */

export interface CommandSourceOptions {
  /** The command's whole environment. Default: this process's environment. */
  env?: NodeJS.ProcessEnv;
  /** Receives each line the command writes to stderr, prefixed `[command <name>] `. */
  log: (line: string) => void;
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the shell could not be started at all. */
  error?: Error;
}

/**
 * A StreamSource running `cmd.run` under `/bin/sh -c`. Each `open` starts the command afresh;
 * `finished` reports on the most recent one, once its output has been read or abandoned.
 */
export function commandSource(cmd: CommandSettings, options: CommandSourceOptions): StreamSource {
  const prefix = `[command ${cmd.name}] `;
  let outcome: Promise<void> | undefined;

  async function* output(signal: AbortSignal | undefined): AsyncGenerator<Uint8Array> {
    let settle!: (err: unknown) => void;
    outcome = new Promise<void>((resolve, reject) => {
      settle = (err) => (err === undefined ? resolve() : reject(err));
    });
    // A consumer that gives up (a failed upload) never asks how the command ended; that must not
    // surface as an unhandled rejection. The promise finished() returns still rejects.
    outcome.catch(() => {});

    if (signal?.aborted) {
      settle(signal.reason);
      throw signal.reason;
    }
    let child: ChildProcess;
    try {
      // Own process group (detached), so stopping it also stops the rest of a pipeline such as
      // `pg_dump | gzip`: sh does not pass SIGTERM on to the commands it started.
      child = spawn("/bin/sh", ["-c", cmd.run], {
        stdio: ["ignore", "pipe", "pipe"],
        env: options.env ?? process.env,
        detached: true,
      });
    } catch (err) {
      // Some spawn failures (E2BIG: an oversized environment) throw instead of emitting "error".
      settle(startError(`command ${cmd.name}`, err));
      return;
    }
    const exited = exitOf(child);
    const stdout = child.stdout!;
    const stderr = child.stderr!;
    const stderrDone = logLines(stderr, prefix, options.log);

    // Set when we stop the command ourselves, so its death by our signal is reported as what it
    // is (aborted, or abandoned by the consumer) and not as the command's own failure.
    let stoppedBy: "abort" | "consumer" | undefined;
    const stop = (why: "abort" | "consumer"): void => {
      if (stoppedBy !== undefined) return;
      stoppedBy = why;
      // Closing our end first ends the read loop at once, even if the command ignores SIGTERM.
      stdout.destroy();
      terminate(child);
    };
    const onAbort = (): void => stop("abort");
    signal?.addEventListener("abort", onAbort, { once: true });

    let readToEnd = false;
    try {
      // Async iteration applies backpressure: while the chunker is busy the pipe fills and the
      // command blocks in write(), so at most a pipe's worth plus one stream buffer is held here.
      for await (const piece of stdout) yield piece as Buffer;
      readToEnd = true;
    } catch (err) {
      // Destroying stdout on abort ends the loop with a premature-close error; report the abort.
      if (stoppedBy === undefined) throw err;
    } finally {
      signal?.removeEventListener("abort", onAbort);
      // Reached without readToEnd when the consumer broke out of its loop or threw: the command
      // must not be left running (or blocked on a full pipe) behind it.
      if (!readToEnd) stop(stoppedBy ?? "consumer");
      // Wait for the exit even when abandoning, so no child outlives this generator unreaped.
      const exit = await exited;
      await drained([stderr], [stderrDone]);
      settle(verdict(cmd.name, exit, stoppedBy, signal));
    }
    if (stoppedBy === "abort") throw signal?.reason;
  }

  return {
    path: cmd.path,
    open: (signal) => output(signal),
    finished() {
      return outcome ?? Promise.reject(new Error(`command ${cmd.name} was never started`));
    },
  };
}

/** The error finished() rejects with, or undefined for a clean exit. Never mentions `run`. */
function verdict(
  name: string,
  exit: Exit,
  stoppedBy: "abort" | "consumer" | undefined,
  signal: AbortSignal | undefined,
): unknown {
  if (exit.error) return startError(`command ${name}`, exit.error);
  if (stoppedBy === "abort") return signal?.reason;
  if (exit.code === 0) return undefined;
  // Whatever else it died of (our SIGTERM, or EPIPE from the pipe we closed) came from stopping it.
  if (stoppedBy === "consumer") {
    return new Error(`command ${name} was stopped before its output was read to the end`);
  }
  if (exit.code !== null) return new Error(`command ${name} exited with code ${exit.code}`);
  return new Error(`command ${name} was killed by signal ${exit.signal ?? "unknown"}`);
}

/** Resolves once the child has exited (it is then reaped) or could not be started. */
function exitOf(child: ChildProcess): Promise<Exit> {
  return new Promise((resolve) => {
    child.once("exit", (code, signal) => resolve({ code, signal }));
    // "error" also reports failed kill() calls on a running child; only a child without a pid
    // failed to start, and for it "exit" never comes.
    child.on("error", (error) => {
      if (child.pid === undefined) resolve({ code: null, signal: null, error });
    });
  });
}

