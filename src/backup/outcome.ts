// How the latest output of a StreamSource ended. open() starts a new one and settles it when
// the output has been read or abandoned; finished() hands it to the archiver.

export class Outcome {
  private current: Promise<void> | undefined;

  /** Starts a new outcome; the returned function settles it (undefined: success). */
  start(): (err: unknown) => void {
    let settle!: (err: unknown) => void;
    this.current = new Promise<void>((resolve, reject) => {
      settle = (err) => (err === undefined ? resolve() : reject(err));
    });
    // A consumer that gives up (a failed upload) never asks how the output ended; that must not
    // surface as an unhandled rejection. The promise finished() returns still rejects.
    this.current.catch(() => {});
    return settle;
  }

  /** The latest outcome; `what` names the source if open() was never called. */
  finished(what: string): Promise<void> {
    return this.current ?? Promise.reject(new Error(`${what} was never started`));
  }
}
