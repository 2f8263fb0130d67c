import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

// Owner names for ids, recorded beside the ids so a restore on another host can map by name
// (as restic and tar do). Read once per run: `getent` includes NSS users (LDAP, sssd); without
// it, /etc/passwd and /etc/group. An id no database names gets no name.

export interface OwnerNames {
  user(uid: number): string | undefined;
  group(gid: number): string | undefined;
}

export function loadOwnerNames(): OwnerNames {
  const users = table("passwd");
  const groups = table("group");
  return { user: (uid) => users.get(uid), group: (gid) => groups.get(gid) };
}

/** id → name from `getent <db>` (or /etc/<db>): lines `name:x:id:...`; the first name of an id wins. */
function table(db: "passwd" | "group"): Map<number, string> {
  let text: string;
  try {
    text = execFileSync("getent", [db], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], maxBuffer: 256 << 20 });
  } catch {
    try {
      text = readFileSync(`/etc/${db}`, "utf8");
    } catch {
      return new Map();
    }
  }
  const out = new Map<number, string>();
  for (const line of text.split("\n")) {
    const [name, , id] = line.split(":");
    if (!name || id === undefined || !/^\d+$/.test(id)) continue;
    if (!out.has(Number(id))) out.set(Number(id), name);
  }
  return out;
}
