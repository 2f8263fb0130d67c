import { readFileSync } from "node:fs";

// Which ids a restored entry is given. A snapshot records owners by id and by name; ids differ
// between hosts (a restore onto a new machine), names mostly do not. So, like tar and restic, a
// restore maps by name where this host knows the name and keeps the recorded id where it does
// not; `--numeric-owner` keeps the ids always. The host's names are read once per restore.

export interface Owned {
  uid: number;
  gid: number;
  userName?: string | null;
  groupName?: string | null;
}

export class OwnerMap {
  #users: Map<string, number> | undefined;
  #groups: Map<string, number> | undefined;
  /** What each recorded id became, for work that knows only the id (chunk placements). */
  readonly #uids = new Map<number, number>();
  readonly #gids = new Map<number, number>();

  /** `byName` false: the recorded ids as they are (--numeric-owner). */
  constructor(
    private readonly byName: boolean,
    private readonly files = { passwd: "/etc/passwd", group: "/etc/group" },
  ) {}

  /** The ids to give an entry; remembered for its ids (see uid/gid). */
  of(e: Owned): { uid: number; gid: number } {
    if (!this.byName) return { uid: e.uid, gid: e.gid };
    this.#users ??= readIds(this.files.passwd);
    this.#groups ??= readIds(this.files.group);
    const uid = (e.userName ? this.#users.get(e.userName) : undefined) ?? e.uid;
    const gid = (e.groupName ? this.#groups.get(e.groupName) : undefined) ?? e.gid;
    // A snapshot from one host gives one name per id; the first seen stands for the id.
    if (!this.#uids.has(e.uid)) this.#uids.set(e.uid, uid);
    if (!this.#gids.has(e.gid)) this.#gids.set(e.gid, gid);
    return { uid, gid };
  }

  /** What of() gave the recorded uid (the id itself if no entry with it was seen). */
  uid(recorded: number): number {
    return this.#uids.get(recorded) ?? recorded;
  }

  gid(recorded: number): number {
    return this.#gids.get(recorded) ?? recorded;
  }
}

/** name → id from a passwd or group file (name:password:id:...); none when it cannot be read. */
function readIds(file: string): Map<string, number> {
  const ids = new Map<string, number>();
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return ids;
  }
  for (const line of text.split("\n")) {
    const [name, , id] = line.split(":");
    if (name && id !== undefined && /^\d+$/.test(id) && !ids.has(name)) ids.set(name, Number(id));
  }
  return ids;
}
