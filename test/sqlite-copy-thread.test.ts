import { existsSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { useTempDirs } from "./helpers/temp.js";

// The SQLite database source copies an application's database on a thread of its own. The
// thread exists only in the compiled build (tests run from source copy in place), so this
// imports dist/, as `vaultik backup` runs it: the copy is whole and consistent, its errors and
// an abort reach the caller.

type Copy = typeof import("../src/catalog/sqlite.js");
const tempDir = useTempDirs("vaultik-sqlitecopy-");

async function compiled(): Promise<Copy> {
  expect(existsSync(new URL("../dist/catalog/sqlite-copy-worker.js", import.meta.url)), "run npm run build first").toBe(true);
  return (await import("../dist/catalog/sqlite.js")) as unknown as Copy;
}

describe("SQLite copy on a worker thread", () => {
  it("copies every row of a WAL database another connection holds open", async () => {
    const { copyLiveDatabaseOffThread } = await compiled();
    const dir = await tempDir();
    const app = new Database(join(dir, "app.db"));
    try {
      app.pragma("journal_mode = WAL");
      app.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
      const insert = app.prepare("INSERT INTO t (v) VALUES (?)");
      app.transaction(() => {
        for (let i = 0; i < 20_000; i++) insert.run(`row ${i}`);
      })();
      await copyLiveDatabaseOffThread(join(dir, "app.db"), join(dir, "copy.db"));
    } finally {
      app.close();
    }
    const copy = new Database(join(dir, "copy.db"), { readonly: true });
    try {
      expect(copy.pragma("integrity_check", { simple: true })).toBe("ok");
      expect(copy.prepare("SELECT count(*) FROM t").pluck().get()).toBe(20_000);
      expect(copy.prepare("SELECT v FROM t WHERE id = 20000").pluck().get()).toBe("row 19999");
    } finally {
      copy.close();
    }
  });

  it("a missing database is the thread's error, named", async () => {
    const { copyLiveDatabaseOffThread } = await compiled();
    const dir = await tempDir();
    await expect(copyLiveDatabaseOffThread(join(dir, "missing.db"), join(dir, "copy.db"))).rejects.toThrow(/unable to open database file|missing\.db/);
  });

  it("an abort while the thread copies rejects with the abort's reason and stops the thread", async () => {
    const { copyLiveDatabaseOffThread } = await compiled();
    const dir = await tempDir();
    new Database(join(dir, "app.db")).exec("CREATE TABLE t (v)").close();
    const abort = new AbortController();
    // Started (the thread is being created) before the abort: the thread's answer cannot have
    // arrived before this synchronous abort, so the abort is what settles the copy.
    const copying = copyLiveDatabaseOffThread(join(dir, "app.db"), join(dir, "copy.db"), abort.signal);
    abort.abort(new Error("stopping"));
    await expect(copying).rejects.toThrow("stopping");
    // Already aborted: refused before any thread starts.
    await expect(copyLiveDatabaseOffThread(join(dir, "app.db"), join(dir, "copy2.db"), abort.signal)).rejects.toThrow("stopping");
    expect(existsSync(join(dir, "copy2.db"))).toBe(false);
  });
});
