import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readCheckRecord } from "../../src/check/last-check.js";
import { loadConfig } from "../../src/config/index.js";
import { generateIdentity, parseIdentity, type X25519Identity } from "../../src/crypto/keys.js";
import { newSnapshotId } from "../../src/model/snapshot-id.js";
import { Repository } from "../../src/repo/repository.js";
import { Fleet } from "../../src/serve/fleet.js";
import { startServeServer, type Auth, type ServeServer } from "../../src/serve/http.js";
import { SnapshotCache } from "../../src/snapshot/cache.js";
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

export interface FleetServer {
  server: ServeServer;
  fleet: Fleet;
  close(): Promise<void>;
}

/**
 * The fleet served as `vaultik serve -c <its config>` would serve it (repository "main"), polled
 * once with the clock at `fx.now`; `repo` is the fixture's repository on the store under test.
 */
export async function startFleetServer(fx: Fleet3, repo: Repository, o: { auth?: Auth; checkRoot?: string; webDir?: string } = {}): Promise<FleetServer> {
  const config = await loadConfig(fx.r.config);
  const cacheDir = await mkdtemp(join(tmpdir(), "vaultik-serve-cache-"));
  try {
    const cache = SnapshotCache.open(cacheDir);
    const checkRoot = o.checkRoot ?? join(fx.dir, "cache");
    const fleet = new Fleet({
      repos: [{
        slug: "main", repo, retention: config.retention, staleAfterMs: config.serve?.staleAfter ?? 26 * HOUR, hostStaleAfterMs: config.serve?.hosts ?? new Map(),
        lastCheck: () => readCheckRecord(checkRoot, repo.location),
      }],
      identities: fx.identities,
      cache,
      now: () => fx.now,
    });
    await fleet.poll();
    const server = await startServeServer({ fleet, identities: fx.identities, cache, host: "127.0.0.1", port: 0, auth: o.auth, webDir: o.webDir });
    return { server, fleet, close: async () => { await server.close(); await rm(cacheDir, { recursive: true, force: true }); } };
  } catch (err) {
    await rm(cacheDir, { recursive: true, force: true });
    throw err;
  }
}
