import { EXIT } from "./exit.js";
import type { Io } from "./io.js";

/**
 * Runs `fn`, which streams to stdout (`dump`, `fetch … -`), with a signal that SIGINT/SIGTERM
 * abort, and that stdout failing aborts too. A reader that went away (`| head`) has what it
 * wanted, as with `cat`: that ends the command with success, not an unhandled 'error' event.
 */
export async function streamToStdout(io: Io, fn: (signal: AbortSignal) => Promise<number>): Promise<number> {
  const abort = new AbortController();
  const stopSignals = io.onInterrupt(() => abort.abort());
  const onError = (err: Error) => abort.abort(err);
  io.stdout.on("error", onError);
  try {
    return await fn(abort.signal);
  } catch (err) {
    if ((abort.signal.reason as NodeJS.ErrnoException | undefined)?.code === "EPIPE") return EXIT.OK;
    throw err;
  } finally {
    io.stdout.off("error", onError);
    stopSignals();
  }
}
