// The CLI's contact with the outside: output streams, the exit code, signals. Commands receive
// it instead of touching `process` so tests and the daemon can run them in-process.

export interface Io {
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  exitCode: number;
  out(text: string): void;
  err(text: string): void;
  /** Calls `handler` on SIGINT/SIGTERM; returns a function that removes it. */
  onInterrupt(handler: () => void): () => void;
}

export function processIo(): Io {
  // `vaultik … | head` closes the pipe early: that ends our output, it is not a crash. A command
  // streaming to stdout (fetch … -) sees the same error through its own listener and stops.
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code !== "EPIPE") throw err;
  });
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    exitCode: 0,
    out: (text) => process.stdout.write(`${text}\n`),
    err: (text) => process.stderr.write(`${text}\n`),
    onInterrupt(handler) {
      let count = 0;
      const on = (signal: NodeJS.Signals) => {
        // A second Ctrl-C means "now": the first one lets the run clean up.
        if (++count > 1) process.exit(128 + (signal === "SIGINT" ? 2 : 15));
        handler();
      };
      process.on("SIGINT", on);
      process.on("SIGTERM", on);
      return () => {
        process.off("SIGINT", on);
        process.off("SIGTERM", on);
      };
    },
  };
}

/**
 * Runs `fn` with a signal that SIGINT/SIGTERM abort (the command then ends with "interrupted",
 * exit 130, after its cleanup); the handlers go when it settles. Without one, a signal kills
 * the process on the spot and leaves its temp files (a decrypted snapshot database) behind.
 */
export async function interruptible<T>(io: Io, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const abort = new AbortController();
  const stop = io.onInterrupt(() => abort.abort());
  try {
    return await fn(abort.signal);
  } finally {
    stop();
  }
}
