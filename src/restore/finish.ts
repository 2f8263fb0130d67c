import {
  chmodSync, closeSync, constants, fchmodSync, fchownSync, futimesSync, lchownSync, lutimesSync, openSync, symlinkSync, unlinkSync,
} from "node:fs";
import { LocalStateError } from "../errors.js";
import { displayPath, fsPath } from "../model/path-bytes.js";
import type { EntryRow } from "../snapshot/read.js";
import type { Xattr } from "../snapshot/schema.js";
import { makeNode } from "./nodes.js";
import type { OwnerMap } from "./owners.js";
import { finishFile, restoredMode, type FileMeta } from "./sink.js";
import { setXattrs, type XattrRefusals } from "./xattrs.js";

// The metadata of restored entries, in one order for every type: content, owner, extended
// attributes (after the owner: a chown drops file capabilities, security.capability), mode
// (after the attributes: setting an ACL changes the mode bits), times. Through a descriptor
// opened without following symlinks wherever one can be opened; a symlink and a device node
// (opening one can act on the device) by path, with the calls that do not follow links.

export interface FinishContext {
  /** Restore owners (root only). */
  owners: boolean;
  ids: OwnerMap;
  refusals: XattrRefusals;
  xattrsOf(id: number): Xattr[];
  /** The restore target (for temporary names: see makeNode) and the snapshot object (for errors). */
  root: string;
  object: string;
}

export class Finisher {
  constructor(private readonly c: FinishContext) {}

  /** What file entry `e` gets once its content is written (its ids as this host gives them). */
  meta(e: EntryRow): FileMeta {
    return { size: e.size, mode: restoredMode(e.mode, this.c.owners), ...this.c.ids.of(e), mtime: utimeSeconds(e.mtimeNs) };
  }

  /** A file whose content is written (or which has none): its size, then its metadata. */
  file(abs: string, e: EntryRow): void {
    const fd = openSync(fsPath(abs), constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
    try {
      finishFile(fd, this.meta(e), this.c.owners, undefined, (fd) => this.xattrs(fd, e));
    } finally {
      closeSync(fd);
    }
  }

  dir(abs: string, e: EntryRow): void {
    const fd = openSync(fsPath(abs), constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    try {
      this.throughFd(fd, e);
    } finally {
      closeSync(fd);
    }
  }

  symlink(abs: string, e: EntryRow): void {
    removeIfPresent(abs, "symlink");
    symlinkSync(fsPath(e.linkTarget ?? ""), fsPath(abs));
    const { uid, gid } = this.c.ids.of(e);
    if (this.c.owners) lchownSync(fsPath(abs), uid, gid);
    this.unsettable(e, "symlinks");
    const time = utimeSeconds(e.mtimeNs);
    lutimesSync(fsPath(abs), time, time);
  }

  /** A FIFO or device node (devices: only as root, see Restorer). */
  node(abs: string, e: EntryRow & { type: "fifo" | "chardev" | "blockdev" }): void {
    removeIfPresent(abs, e.type);
    makeNode(abs, e.type, e.rdev, this.c.root, this.c.object, (tmp) => {
      if (e.type === "fifo") {
        // Opening a FIFO for reading without blocking has no effect on it.
        const fd = openSync(tmp, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
        try {
          this.throughFd(fd, e);
        } finally {
          closeSync(fd);
        }
        return;
      }
      const { uid, gid } = this.c.ids.of(e);
      if (this.c.owners) lchownSync(tmp, uid, gid);
      this.unsettable(e, "device nodes");
      chmodSync(tmp, restoredMode(e.mode, this.c.owners));
      const time = utimeSeconds(e.mtimeNs);
      lutimesSync(tmp, time, time);
    });
  }

  private throughFd(fd: number, e: EntryRow): void {
    const { uid, gid } = this.c.ids.of(e);
    if (this.c.owners) fchownSync(fd, uid, gid);
    this.xattrs(fd, e);
    fchmodSync(fd, restoredMode(e.mode, this.c.owners));
    const time = utimeSeconds(e.mtimeNs);
    futimesSync(fd, time, time);
  }

  private xattrs(fd: number, e: EntryRow): void {
    const attrs = this.c.xattrsOf(e.id);
    if (attrs.length > 0) setXattrs(fd, e.path, attrs, this.c.refusals);
  }

  /** Attributes recorded where vaultik cannot set them (no descriptor to set them through). */
  private unsettable(e: EntryRow, what: string): void {
    if (this.c.xattrsOf(e.id).length > 0) {
      this.c.refusals.note(e.path, `extended attributes of ${what}`, "vaultik sets them through a descriptor, which it does not open for these");
    }
  }
}

/**
 * Removes what is at `abs` (a file of an earlier restore, a symlink, a hard link to a file
 * elsewhere, a FIFO), so what the restore makes there is new: it never writes into, through or
 * beside something it did not make. A directory in the way is an error.
 */
export function removeIfPresent(abs: string, what: string): void {
  try {
    unlinkSync(fsPath(abs));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return;
    if (code === "EISDIR") throw new LocalStateError(displayPath(abs), `cannot restore this ${what}: a directory is in the way`, { cause: err });
    throw err;
  }
}

/**
 * Node's utimes takes seconds as a double, which libuv truncates to nanoseconds; at today's
 * epoch a double resolves about 0.24 µs. Aiming half a microsecond in makes the truncation land
 * on the right microsecond, so restored mtimes are exact to the microsecond (the nanoseconds
 * the snapshot records are beyond what Node's calls take).
 */
export function utimeSeconds(mtimeNs: bigint): number {
  return utimeFromMicros(Number(mtimeNs / 1000n));
}

/** The same from whole microseconds (which SQLite can hand out as a safe JavaScript number). */
export function utimeFromMicros(us: number): number {
  return us / 1e6 + 5e-7;
}
