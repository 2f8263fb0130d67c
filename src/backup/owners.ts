import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

// Owner names for ids, recorded beside the ids so a restore on another host can map by name
// (as restic and tar do). /etc/passwd and /etc/group are read once per run; an id they do not
// name is asked of `getent` (NSS: LDAP, sssd), once per id and run. Spawning getent for the
// whole databases up front cost an unchanged re-run of 20k files more than its file lookups.
// An id no database names gets no name.

export interface OwnerNames {
  user(uid: number): string | undefined;
  group(gid: number): string | undefined;
}

export function loadOwnerNames(): OwnerNames {
  const users = lookup("passwd");
  const groups = lookup("group");
  return { user: users, group: groups };
}

function lookup(db: "passwd" | "group"): (id: number) => string | undefined {
  const known = parse(readOrEmpty(`/etc/${db}`));
  return (id) => {
    if (!known.has(id)) known.set(id, parse(getent(db, id)).get(id));
    return known.get(id);
  };
}

function readOrEmpty(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/** `getent <db> <id>`'s line, or "" (no such id, or no getent). */
function getent(db: string, id: number): string {
  try {
    return execFileSync("getent", [db, String(id)], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  } catch {
    return "";
  }
}

/** id → name from lines `name:x:id:...`; the first name of an id wins. */
function parse(text: string): Map<number, string | undefined> {
  const out = new Map<number, string | undefined>();
  for (const line of text.split("\n")) {
    const [name, , id] = line.split(":");
    if (!name || id === undefined || !/^\d+$/.test(id)) continue;
    if (!out.has(Number(id))) out.set(Number(id), name);
  }
  return out;
}
