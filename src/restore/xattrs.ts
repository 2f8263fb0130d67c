import { createRequire } from "node:module";
import { hasRawBytes } from "../model/path-bytes.js";
import type { Xattr } from "../snapshot/schema.js";
import type { EntryProblem } from "./report.js";

// Extended attributes (POSIX ACLs among them: setting system.posix_acl_* sets the ACL) are set
// through a descriptor, so nothing follows a symlink. Node has no xattr calls; fs-native-extensions
// (maintained, prebuilt for Linux and macOS) has fd-based ones. A target may refuse some: trusted.*
// and security.* need root, a file system may not support xattrs or ACLs at all. Content matters
// more than its labels, so a refusal is a warning, reported once per kind of attribute and error
// with how many entries it cost, and the restore goes on.

interface NativeXattrs {
  setAttrSync(fd: number, name: string, value: Uint8Array): void;
}

let native: NativeXattrs | undefined;

/** Refusals of a restore, one per (attribute kind, reason). */
export class XattrRefusals {
  readonly #seen = new Map<string, { path: string; what: string; reason: string; entries: Set<string> }>();

  /** Entry `path` could not get `what` (an attribute kind: see kindOf) because of `reason`. */
  note(path: string, what: string, reason: string): void {
    const key = `${what}\0${reason}`;
    const seen = this.#seen.get(key) ?? { path, what, reason, entries: new Set<string>() };
    seen.entries.add(path);
    this.#seen.set(key, seen);
  }

  /** One warning per kind and reason, on the first entry it concerned. */
  warnings(): EntryProblem[] {
    return [...this.#seen.values()].map((r) => {
      const n = r.entries.size;
      return { path: r.path, message: `${r.what} not restored (${r.reason}): ${n} ${n === 1 ? "entry" : "entries"}, the first named here` };
    });
  }
}

/** How a refusal of attribute `name` is grouped: by namespace, ACLs by their name. */
export function kindOf(name: string): string {
  return name.startsWith("system.posix_acl_") ? `${name} extended attributes (POSIX ACL)` : `${name.split(".")[0]}.* extended attributes`;
}

/** Sets `attrs` on open file or directory `fd` (entry `path`); what the target refuses goes to `refusals`. */
export function setXattrs(fd: number, path: string, attrs: readonly Xattr[], refusals: XattrRefusals): void {
  for (const a of attrs) {
    // The package takes names as UTF-8 strings: a name with other bytes cannot be passed.
    if (hasRawBytes(a.name)) {
      refusals.note(path, kindOf(a.name), "a name that is not UTF-8");
      continue;
    }
    try {
      native ??= createRequire(import.meta.url)("fs-native-extensions") as NativeXattrs;
      native.setAttrSync(fd, a.name, a.value);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      refusals.note(path, kindOf(a.name), e.code ? `${e.code}: ${describe(e.code)}` : e.message);
    }
  }
}

function describe(code: string): string {
  switch (code) {
    case "EPERM":
    case "EACCES":
      return "not permitted for this user";
    case "ENOTSUP":
    case "EOPNOTSUPP":
      return "the target's file system does not support them";
    case "E2BIG":
    case "ERANGE":
    case "ENOSPC":
      return "too large for the target's file system";
    case "EINVAL":
      return "the target's file system rejects the value";
    default:
      return "refused by the target";
  }
}
