import { closeSync, constants, openSync } from "node:fs";
import fsx from "fs-native-extensions";
import { fsPath } from "../model/path-bytes.js";
import type { Xattr } from "../snapshot/schema.js";

// Extended attributes of a file or directory, POSIX ACLs included (system.posix_acl_access and
// system.posix_acl_default are xattrs whose values are the kernel's ACL encoding, kept raw).
// Every namespace the kernel lists to this process is kept: user.* always, security.* and
// trusted.* as root. Read through a descriptor (fs-native-extensions has only fd calls):
// O_NOFOLLOW so a symlink swapped in is not followed, O_NONBLOCK so a FIFO swapped in does not
// block. Symlinks, FIFOs and devices are not asked: opening a device can have side effects, and
// Linux allows user.* only on files and directories.

/** The entry's attributes, sorted by name; none when it cannot be opened or has no support. */
export function readXattrs(abs: string): Xattr[] {
  let fd: number;
  try {
    fd = openSync(fsPath(abs), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    // Unreadable (its content read reports it) or gone (the walk or the read reports it).
    return [];
  }
  try {
    let names: string[];
    try {
      names = fsx.listAttrsSync(fd);
    } catch {
      return []; // a file system without xattrs
    }
    const out: Xattr[] = [];
    for (const name of names.sort()) {
      try {
        const value = fsx.getAttrSync(fd, name);
        if (value !== null) out.push({ name, value });
      } catch {
        // Removed since the listing, or not readable by us (e.g. trusted.* without CAP_SYS_ADMIN).
      }
    }
    return out;
  } finally {
    closeSync(fd);
  }
}
