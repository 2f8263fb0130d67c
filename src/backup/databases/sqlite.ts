import { createReadStream } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { copyLiveDatabaseOffThread } from "../../catalog/sqlite.js";
import { errorMessage } from "../../errors.js";
import type { StreamSource } from "../archiver.js";
import { Outcome } from "../outcome.js";
import type { DatabaseSettings } from "../settings.js";

// A SQLite database that its application keeps writing. Copying the file as it lies could catch
// a commit half-written; SQLite's online backup API gives a consistent image. That API writes
// into a database file, and this build of SQLite has no sqlite_dbpage table (which would let
// one read transaction stream the pages), so the image goes to a private file in the backup's
// work directory first, is streamed from there, and is deleted at once. A run that dies
// leaves it behind for the next run's sweep of the work directory (backup/run.ts).

export function sqliteSource(db: DatabaseSettings, spoolDir: string): StreamSource {
  const outcome = new Outcome();

  async function* output(signal: AbortSignal | undefined): AsyncGenerator<Uint8Array> {
    const settle = outcome.start();
    const copy = join(spoolDir, `sqlite-${randomBytes(8).toString("hex")}.sqlite`);
    let failure: unknown;
    try {
      signal?.throwIfAborted();
      try {
        await copyLiveDatabaseOffThread(db.file!, copy, signal);
      } catch (err) {
        if (signal?.aborted) throw err;
        failure = new Error(`database ${db.name}: cannot copy ${db.file}: ${errorMessage(err)}`, { cause: err });
        return;
      }
      // The copy can take a while; a run stopped meanwhile should not go on to stream it.
      signal?.throwIfAborted();
      for await (const piece of createReadStream(copy, { signal })) yield piece as Buffer;
    } catch (err) {
      failure = err;
      throw err;
    } finally {
      await rm(copy, { force: true });
      settle(failure);
    }
  }

  return {
    path: db.path,
    open: (signal) => output(signal),
    finished: () => outcome.finished(`database ${db.name}`),
  };
}
