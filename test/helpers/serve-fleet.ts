import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateIdentity, parseIdentity, type X25519Identity } from "../../src/crypto/keys.js";
import { newSnapshotId } from "../../src/model/snapshot-id.js";
import { Repository } from "../../src/repo/repository.js";
import { openFsStore } from "../../src/store/fs.js";
import { backupAt, localRepo, type LocalRepo } from "./setup.js";

// The fleet of issue 18's tests: one repository, three hosts backed up for real (runBackup with
// `host` and a fixed clock), seen by a server whose clock is NOW:
//   alpha: two snapshots (3 h and 1 h old), a known change between them: fine;
//   beta:  one snapshot 10 days old: stale;
//   gamma: a snapshot 2 h old, then a run that beat once and never ended: abandoned.

export const HOUR = 3600_000;

export interface Fleet3 {
  dir: string;
  r: LocalRepo;
  identities: X25519Identity[];
  /** Real time when the fleet was made, whole seconds. */
  made: number;
  /** The server's clock: two hours later, so gamma's lone heartbeat is over an hour old. */
  now: number;
  ids: { a1: string; a2: string; b1: string; g1: string; abandoned: string };
  /** Source bytes by path below the source directory. */
  files: Record<string, Buffer>;
  cleanup(): Promise<void>;
}

export async function makeFleet3(extraConfig = ""): Promise<Fleet3> {
  const dir = await mkdtemp(join(tmpdir(), "vaultik-serve-"));
  try {
    const keys = await generateIdentity();
    const r = await localRepo(dir, keys, extraConfig);
    const files: Record<string, Buffer> = {
      "docs/readme.txt": Buffer.from("hello fleet\n"),
      "etc/conf.ini": Buffer.from("a=1\n"),
      "data/big.bin": randomBytes(300_000),
    };
    const write = () => {
      for (const [p, data] of Object.entries(files)) {
        mkdirSync(join(r.source, p, ".."), { recursive: true });
        writeFileSync(join(r.source, p), data);
      }
    };
    write();
    const made = Math.floor(Date.now() / 1000) * 1000;
    const a1 = await backupAt(r, made - 3 * HOUR, "alpha");
    files["etc/conf.ini"] = Buffer.from("a=2\nb=3\n");
    files["docs/new.txt"] = Buffer.from("new\n");
    write();
    const a2 = await backupAt(r, made - HOUR, "alpha");
    const b1 = await backupAt(r, made - 240 * HOUR, "beta");
    const g1 = await backupAt(r, made - 2 * HOUR, "gamma");
    // A run that started (its first heartbeat, through the repository's own API) and died.
    const abandoned = newSnapshotId(new Date(made), "gamma");
    await new Repository(openFsStore(r.repo)).beat(abandoned, made);
    return {
      dir, r, files, made, now: made + 2 * HOUR,
      identities: [parseIdentity(keys.identity)],
      ids: { a1, a2, b1, g1, abandoned },
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
