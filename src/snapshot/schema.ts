// The snapshot database: one SQLite file per snapshot, self-contained (restore needs nothing
// else but the key and the blobs), stored as age(zstd(sqlite)). docs/FORMAT.md describes it
// column by column; bump SNAPSHOT_FORMAT on any change a reader must know about.

export const SNAPSHOT_FORMAT = 1;

export const SNAPSHOT_SCHEMA = `
CREATE TABLE meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE files (
  id INTEGER PRIMARY KEY,
  path TEXT NOT NULL UNIQUE,
  type TEXT NOT NULL CHECK (type IN ('file', 'dir', 'symlink')),
  mode INTEGER NOT NULL,
  uid INTEGER NOT NULL,
  gid INTEGER NOT NULL,
  size INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL,
  link_target TEXT,
  status TEXT
);
CREATE TABLE file_chunks (
  file_id INTEGER NOT NULL REFERENCES files(id),
  seq INTEGER NOT NULL,
  chunk BLOB NOT NULL,
  PRIMARY KEY (file_id, seq)
) WITHOUT ROWID;
CREATE TABLE blobs (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  size INTEGER NOT NULL,
  header_length INTEGER NOT NULL
);
CREATE TABLE chunks (
  hash BLOB PRIMARY KEY,
  blob_id INTEGER NOT NULL REFERENCES blobs(id),
  offset INTEGER NOT NULL,
  length INTEGER NOT NULL,
  raw_offset INTEGER NOT NULL,
  raw_length INTEGER NOT NULL,
  compression TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE errors (
  path TEXT NOT NULL,
  message TEXT NOT NULL
);
`;

export type EntryType = "file" | "dir" | "symlink";

/** Row values of `files`; `status` is null, or "changed" when the file changed while read. */
export interface SnapshotEntry {
  path: string;
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeNs: bigint;
  linkTarget?: string;
  status?: "changed";
}

/** Keys of the `meta` table. */
export interface SnapshotMeta {
  format: number;
  id: string;
  host: string;
  time: string;
  sourceDirs: string[];
  vaultikVersion: string;
  chunker: string;
  chunkSize: number;
  chunkHash: string;
  blobHash: string;
  compression: string;
  /** Filled in when the snapshot is complete. */
  stats?: SnapshotStats;
}

export interface SnapshotStats {
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  errors: number;
  /** Files that changed while being read (their content may be inconsistent). */
  changed: number;
}
