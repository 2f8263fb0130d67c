// The snapshot database: one SQLite file per snapshot, self-contained (restore needs nothing
// else but the key and the blobs), stored as age(zstd(sqlite)). docs/FORMAT.md describes it
// column by column; bump SNAPSHOT_FORMAT on any change a reader must know about.

export const SNAPSHOT_FORMAT = 2;

/** The oldest format this version still reads (FORMAT.md §4.3). */
export const OLDEST_SNAPSHOT_FORMAT = 1;

// Format 2 (issue 15): paths and link targets are the bytes the kernel gave (BLOB), chunks are
// placed by file offset (a gap is a hole), hard-link sets, special files, owner names and
// extended attributes. Format 1 is SNAPSHOT_SCHEMA_V1 below, still read.
export const SNAPSHOT_SCHEMA = `
CREATE TABLE meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE files (
  id INTEGER PRIMARY KEY,
  path BLOB NOT NULL UNIQUE,
  type TEXT NOT NULL CHECK (type IN ('file', 'dir', 'symlink', 'fifo', 'chardev', 'blockdev')),
  mode INTEGER NOT NULL,
  uid INTEGER NOT NULL,
  gid INTEGER NOT NULL,
  user_name TEXT,
  group_name TEXT,
  size INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL,
  link_target BLOB,
  rdev INTEGER,
  link_id INTEGER,
  status TEXT
);
CREATE TABLE file_chunks (
  file_id INTEGER NOT NULL REFERENCES files(id),
  offset INTEGER NOT NULL,
  chunk BLOB NOT NULL,
  PRIMARY KEY (file_id, offset)
) WITHOUT ROWID;
CREATE TABLE xattrs (
  file_id INTEGER NOT NULL REFERENCES files(id),
  name BLOB NOT NULL,
  value BLOB NOT NULL,
  PRIMARY KEY (file_id, name)
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
  path BLOB NOT NULL,
  message TEXT NOT NULL
);
`;

/** Format 1 (vaultik before issue 15): text paths, chunks in sequence, no holes. Read only. */
export const SNAPSHOT_SCHEMA_V1 = `
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE files (
  id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE,
  type TEXT NOT NULL CHECK (type IN ('file', 'dir', 'symlink')),
  mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL, size INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL, link_target TEXT, status TEXT
);
CREATE TABLE file_chunks (
  file_id INTEGER NOT NULL REFERENCES files(id), seq INTEGER NOT NULL, chunk BLOB NOT NULL,
  PRIMARY KEY (file_id, seq)
) WITHOUT ROWID;
CREATE TABLE blobs (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, size INTEGER NOT NULL, header_length INTEGER NOT NULL);
CREATE TABLE chunks (
  hash BLOB PRIMARY KEY, blob_id INTEGER NOT NULL REFERENCES blobs(id), offset INTEGER NOT NULL,
  length INTEGER NOT NULL, raw_offset INTEGER NOT NULL, raw_length INTEGER NOT NULL, compression TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE errors (path TEXT NOT NULL, message TEXT NOT NULL);
`;

export type EntryType = "file" | "dir" | "symlink" | "fifo" | "chardev" | "blockdev";

export const ENTRY_TYPES: ReadonlySet<string> = new Set<EntryType>(["file", "dir", "symlink", "fifo", "chardev", "blockdev"]);

/** An extended attribute (POSIX ACLs are the system.posix_acl_* ones). Names are paths-like strings (model/path-bytes). */
export interface Xattr {
  name: string;
  value: Uint8Array;
}

/**
 * Row values of `files`. Paths and link targets are internal path strings (model/path-bytes).
 * `status` is absent, or "changed" when the file changed while read.
 */
export interface SnapshotEntry {
  path: string;
  type: EntryType;
  /** Permission bits with setuid, setgid and sticky (07777). */
  mode: number;
  uid: number;
  gid: number;
  /** Owner names at backup time, when the host knew them. */
  userName?: string;
  groupName?: string;
  /** Bytes for files (holes included); 0 for other types. */
  size: number;
  mtimeNs: bigint;
  linkTarget?: string;
  /** Device number of a chardev or blockdev (st_rdev). */
  rdev?: number;
  status?: "changed";
  xattrs?: readonly Xattr[];
}

/** A chunk of a file's content: its hash and where in the file it starts (a gap before it is a hole). */
export interface FileChunkRef {
  offset: number;
  /** Bytes of the chunk (its raw length): not stored here, the chunks table has it. */
  length: number;
  hash: Uint8Array;
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
  /** FIFOs and device nodes (format 2). */
  special?: number;
  /** File entries that are further names of an inode already recorded (format 2). */
  hardLinks?: number;
  /** Sockets met and not recorded (format 2): nothing can restore a socket. */
  sockets?: number;
}
