import { spawn, type ChildProcess } from "node:child_process";
import type { StreamSource } from "./archiver.js";
import { Outcome } from "./outcome.js";
import { drained, logLines, startError, terminate } from "../util/child.js";

// A program whose standard output is stored in the snapshot as one file: a configured command
// (commands.ts) or a database dump tool (databases/). The output goes straight from the pipe
// into the chunker: a dump can be far larger than memory or the spool directory, so it is never
// collected.
//
// The argv may hold credentials (a command line `PGPASSWORD=… pg_dump`), so messages name the
// source by its `label` and never show the argv. Database tools get their password in the
// environment or on stdin instead, and their stderr goes through `redact` before it is logged
// or quoted in the error.

/** How much of the end of stderr a failure quotes (with `redact`): the tool's own reason. */
const STDERR_TAIL = 2048;

export interface ChildSpec {
  /** Names the source in logs and errors, e.g. `command db` or `database app: pg_dump`. */
  label: string;
  /** Prefix of each logged stderr line, e.g. `[command db] `. */
  logPrefix: string;
  /** Snapshot path of the output. */
  path: string;
  /** Program and arguments, run without a shell. */
  argv: readonly string[];
  /** The child's whole environment. Default: this process's environment. */
  env?: NodeJS.ProcessEnv;
  /** Written to the child's stdin, which is then closed (mongodump reads its password there). */
  input?: string;
  /** Hides secrets in stderr. Given, a failure's error also quotes the end of stderr. */
  redact?: (text: string) => string;
  /** Receives each stderr line, prefixed with logPrefix. */
  log: (line: string) => void;
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the program could not be started at all. */
  error?: Error;
}

/**
 * A StreamSource running `spec.argv`. Each `open` starts the program afresh; `finished`
 * reports on the most recent run, once its output has been read or abandoned.
 */
export function childSource(spec: ChildSpec): StreamSource {
  const redact = spec.redact ?? ((text: string) => text);
  const outcome = new Outcome();

  async function* output(signal: AbortSignal | undefined): AsyncGenerator<Uint8Array> {
    const settle = outcome.start();

    if (signal?.aborted) {
      settle(signal.reason);
      throw signal.reason;
    }
    let child: ChildProcess;
    try {
      // Own process group (detached), so stopping it also stops the rest of a pipeline such as
      // `pg_dump | gzip`: sh does not pass SIGTERM on to the commands it started.
      child = spawn(spec.argv[0]!, spec.argv.slice(1), {
        stdio: [spec.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
        env: spec.env ?? process.env,
        detached: true,
      });
    } catch (err) {
      // Some spawn failures (E2BIG: an oversized environment) throw instead of emitting "error".
      settle(startError(spec.label, err));
      return;
    }
    const exited = exitOf(child);
    const stdout = child.stdout!;
    const stderr = child.stderr!;
    if (spec.input !== undefined) {
      // A tool that exits without reading its stdin must not fail the run with EPIPE here.
      child.stdin!.on("error", () => {});
      child.stdin!.end(spec.input);
    }
    let tail = "";
    const stderrDone = logLines(stderr, "", (line) => {
      const shown = redact(line);
      spec.log(spec.logPrefix + shown);
      tail = `${tail}\n${shown}`.slice(-STDERR_TAIL);
    });

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
      settle(verdict(spec, exit, stoppedBy, signal, tail.trim()));
    }
    if (stoppedBy === "abort") throw signal?.reason;
  }

  return {
    path: spec.path,
    open: (signal) => output(signal),
    finished: () => outcome.finished(spec.label),
  };
}

/** The error finished() rejects with, or undefined for a clean exit. Never shows the argv. */
function verdict(
  spec: ChildSpec,
  exit: Exit,
  stoppedBy: "abort" | "consumer" | undefined,
  signal: AbortSignal | undefined,
  stderrTail: string,
): unknown {
  const name = spec.label;
  if (exit.error) return startError(name, exit.error);
  if (stoppedBy === "abort") return signal?.reason;
  if (exit.code === 0) return undefined;
  // Whatever else it died of (our SIGTERM, or EPIPE from the pipe we closed) came from stopping it.
  if (stoppedBy === "consumer") {
    return new Error(`${name} was stopped before its output was read to the end`);
  }
  // Only a redacted stderr may be quoted: a command's may echo the credentials of its line.
  const reason = spec.redact !== undefined && stderrTail !== "" ? `: ${stderrTail}` : "";
  if (exit.code !== null) return new Error(`${name} exited with code ${exit.code}${reason}`);
  return new Error(`${name} was killed by signal ${exit.signal ?? "unknown"}${reason}`);
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

