import type Database from "better-sqlite3";
import { attachSqlite } from "./sqlite.js";

// The catalog and a snapshot database meet in two places: a snapshot takes its chunk locations
// from the catalog, and a full walk's snapshot tells the catalog which entries are gone. Both
// are one SQL join across an ATTACHed file (a lookup per row costs far more), yet each schema's
// SQL stays with its owner: the owner defines a temp view over its own tables on the other
// side's connection, and the other side knows only the view's name and columns.

/** A view of one database made visible on another's connection. */
export interface SharedView {
  /** What to write in SQL on the borrowing connection (`temp.<name>`). */
  readonly name: string;
  /** Drops the view and detaches the database (outside a transaction). */
  close(): void;
}

/** Attaches `file` to `conn` as `alias` and defines `temp.<view>` over it as `select`. */
export function shareView(conn: Database.Database, file: string, alias: string, view: string, select: string): SharedView {
  attachSqlite(conn, file, alias);
  try {
    conn.exec(`CREATE TEMP VIEW ${view} AS ${select}`);
  } catch (err) {
    conn.exec(`DETACH DATABASE ${alias}`);
    throw err;
  }
  return {
    name: `temp.${view}`,
    close: () => conn.exec(`DROP VIEW IF EXISTS temp.${view}; DETACH DATABASE ${alias}`),
  };
}

/** A database whose paths the catalog can join against (the snapshot a full walk built). */
export interface PathSource {
  /** A view with one column, `path`: every entry's snapshot path (no leading `/`). */
  sharePaths(conn: Database.Database): SharedView;
}
