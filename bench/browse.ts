// `vaultik find` and `vaultik ls -R` on 100 snapshots x ~50k entries (issue 16 item 4).
//
//   npm run build && npm run bench:browse [-- --snapshots 100 --files 50000 --corpus /usr/share,/usr/lib/x86_64-linux-gnu]
//
// The snapshots are crafted, not backed up: the entries (paths, types, modes, owners, sizes,
// mtimes) of the bench corpus's directories as lstat sees them, no content, each snapshot a
// little different (1% of files with another size and mtime, one file of its own), three hosts.
// Snapshot databases are built with SnapshotBuilder and stored encrypted with
// Repository.putSnapshot in a local directory repository: `find` and `ls` read nothing else.
// Times are of the built binary, as a user runs it; the query's share is measured in-process.
//
// Not a test: the figures depend on the machine.

import { execFileSync, spawnSync } from "node:child_process";
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { compilePatterns } from "../src/snapshot/find-pattern.js";
import { parseIdentity } from "../src/crypto/keys.js";
import { Repository } from "../src/repo/repository.js";
import { descendants } from "../src/snapshot/listing.js";
import { SnapshotReader } from "../src/snapshot/read.js";
import type { EntryType, SnapshotEntry } from "../src/snapshot/schema.js";
import { openFsStore } from "../src/store/fs.js";
import { writeFileAtomicSync } from "../src/util/fsio.js";
import { craftEntries } from "../test/helpers/craft-snapshot.js";

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1]! : fallback;
};
const SNAPSHOTS = Number(arg("--snapshots", "100"));
const FILES = Number(arg("--files", "50000"));
const CORPUS = arg("--corpus", "/usr/share,/usr/lib/x86_64-linux-gnu").split(",");
const BIN = fileURLToPath(new URL("../bin/vaultik.js", import.meta.url));
const HOSTS = ["alpha", "beta", "gamma"];

/** The corpus's entries as a backup would record them, up to `limit` (dirs and all). */
function walk(roots: readonly string[], limit: number): SnapshotEntry[] {
  const out: SnapshotEntry[] = [];
  const add = (abs: string) => {
    const s = lstatSync(abs, { bigint: true });
    const type: EntryType | undefined = s.isFile() ? "file" : s.isDirectory() ? "dir" : s.isSymbolicLink() ? "symlink" : undefined;
    if (type === undefined) return;
    out.push({ path: abs.slice(1), type, mode: Number(s.mode & 0o7777n), uid: Number(s.uid), gid: Number(s.gid), size: type === "file" ? Number(s.size) : 0, mtimeNs: s.mtimeNs, userName: "root", groupName: "root" });
  };
  for (const root of roots) {
    // The root and the directories above it, as a backup records them.
    const parts = root.split("/").filter(Boolean);
    for (let i = 1; i <= parts.length; i++) add(`/${parts.slice(0, i).join("/")}`);
    for (const e of readdirSync(root, { recursive: true, withFileTypes: true })) {
      if (out.length >= limit) return out;
      add(join(e.parentPath, e.name));
    }
  }
  return out;
}

function time(args: string[], env: NodeJS.ProcessEnv): { s: number; lines: number; bytes: number } {
  const t = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [BIN, ...args], { env, maxBuffer: 1 << 30 });
  const s = Number(process.hrtime.bigint() - t) / 1e9;
  if (r.status !== 0) throw new Error(`vaultik ${args.join(" ")}: exit ${r.status}: ${r.stderr.toString()}`);
  return { s, lines: r.stdout.toString().split("\n").length - 1, bytes: r.stdout.length };
}

const root = mkdtempSync(join(tmpdir(), "vaultik-bench-browse-"));
try {
  const keygen = execFileSync(process.execPath, [BIN, "keygen"], { encoding: "utf8" });
  const recipient = /# public key: (age1\S+)/.exec(keygen)![1]!;
  const identity = /AGE-SECRET-KEY-1\S+/.exec(keygen)![0];
  const repoDir = join(root, "repo");
  mkdirSync(repoDir);
  const repo = new Repository(openFsStore(repoDir));
  const base = walk(CORPUS, FILES);
  const started = process.hrtime.bigint();
  const base0 = Date.UTC(2026, 9, 1);
  for (let i = 0; i < SNAPSHOTS; i++) {
    const entries = base.map((e, k) => (e.type === "file" && (k + i) % 100 === 0 ? { ...e, size: e.size + i, mtimeNs: e.mtimeNs + BigInt(i) * 1_000_000_000n } : e));
    entries.push({ path: `var/bench/snap-${i}.log`, type: "file", mode: 0o644, uid: 0, gid: 0, size: i, mtimeNs: BigInt(base0 + i * 3_600_000) * 1_000_000n });
    await craftEntries({ repo, recipient, host: HOSTS[i % 3]!, time: new Date(base0 + i * 3_600_000), sourceDirs: CORPUS }, entries);
  }
  const craftS = Number(process.hrtime.bigint() - started) / 1e9;
  let stored = 0;
  for (const f of readdirSync(join(repoDir, "index"))) stored += statSync(join(repoDir, "index", f)).size;

  const cacheDir = join(root, "cache");
  const env = { ...process.env, VAULTIK_PRIVATE_KEY: identity, VAULTIK_CACHE_DIR: cacheDir, NODE_NO_WARNINGS: "1" };
  const rows: string[] = [];
  const load = () => loadavg()[0]!.toFixed(1);
  for (const pattern of ["*.html", "snap-42.log", "**/doc/*/copyright"]) {
    const first = time(["find", repoDir, pattern], env);
    const second = time(["find", repoDir, pattern], env);
    rows.push(`| find \`${pattern}\` | ${first.s.toFixed(2)} s | ${second.s.toFixed(2)} s | ${first.lines} | ${load()} |`);
  }
  const ls1 = time(["ls", repoDir, "latest", "-R"], env);
  const ls2 = time(["ls", repoDir, "latest", "-R"], env);
  rows.push(`| ls -R latest | ${ls1.s.toFixed(2)} s | ${ls2.s.toFixed(2)} s | ${ls1.lines} | ${load()} |`);
  const lsl = time(["ls", repoDir, "latest", "-R", "-l"], env);
  rows.push(`| ls -R -l latest | ${lsl.s.toFixed(2)} s | | ${lsl.lines} | ${load()} |`);
  const lsTop = time(["ls", repoDir, "latest", `/${CORPUS[0]!.split("/").filter(Boolean).join("/")}`], env);
  rows.push(`| ls of ${CORPUS[0]} (children only) | ${lsTop.s.toFixed(2)} s | | ${lsTop.lines} | ${load()} |`);
  let cacheBytes = 0;
  try {
    for (const e of readdirSync(cacheDir, { recursive: true, withFileTypes: true })) if (e.isFile()) cacheBytes += statSync(join(e.parentPath, e.name)).size;
  } catch {
    // no cache directory: the cache has not landed
  }

  // In-process: what the query costs on one decrypted database, with the SQL prefilter and
  // without it (every row through picomatch in JavaScript), and opening plus decrypting it.
  const snap = (await repo.listSnapshots()).at(-1)!;
  const db = join(root, "one.sqlite");
  let t = process.hrtime.bigint();
  await repo.getSnapshot(snap, [parseIdentity(identity)], db);
  const fetchMs = Number(process.hrtime.bigint() - t) / 1e6;
  const reader = new SnapshotReader(db, snap.key);
  const query: string[] = [];
  for (const pattern of ["*.html", "snap-42.log"]) {
    const c = compilePatterns([pattern], false);
    const ms = (names: typeof c.names) => {
      const t0 = process.hrtime.bigint();
      let n = 0;
      for (let k = 0; k < 5; k++) for (const e of reader.search({ names })) if (c.test(e.path)) n++;
      return [Number(process.hrtime.bigint() - t0) / 5e6, n / 5] as const;
    };
    const [pre, n] = ms(c.names);
    const [all] = ms(undefined);
    query.push(`| \`${pattern}\` | ${n} | ${pre.toFixed(1)} ms | ${all.toFixed(1)} ms |`);
  }
  reader.close();
  t = process.hrtime.bigint();
  const again = new SnapshotReader(db, snap.key);
  const lsR = [...descendants(again, "")].length;
  again.close();
  const lsMs = Number(process.hrtime.bigint() - t) / 1e6;

  const date = new Date().toISOString().replace(/[-:]/g, "").slice(0, 13).replace("T", "-");
  const report = `# browse bench ${new Date().toISOString().slice(0, 16)} UTC

${SNAPSHOTS} crafted snapshots (3 hosts) of ${base.length + 1} entries each (the entries of ${CORPUS.join(" + ")} as lstat
sees them, capped at ${FILES}; 1% of files changed per snapshot, one file of its own), local directory repository:
${(stored / 2 ** 20).toFixed(1)} MiB of snapshot objects, crafted in ${craftS.toFixed(0)} s. ${process.version}, 2 cores shared
(load average at the start of each run in the last column). Through the built binary, wall time.

| command | first run | second run | output lines | load |
| --- | ---: | ---: | ---: | ---: |
${rows.join("\n")}

The snapshot cache (VAULTIK_CACHE_DIR) held ${cacheBytes} bytes after these runs${cacheBytes === 0 ? ": it has not landed on this branch, so the second run downloads and decrypts again" : ""}.

In-process, one snapshot: download + decrypt + decompress ${fetchMs.toFixed(0)} ms; \`ls -R\` (descendants) ${lsMs.toFixed(0)} ms for ${lsR} entries. search() and the
glob, mean of 5 (with the SQL GLOB prefilter / every row through picomatch in JavaScript):

| pattern | matches | prefilter | JavaScript only |
| --- | ---: | ---: | ---: |
${query.join("\n")}
`;
  mkdirSync(fileURLToPath(new URL("./results/", import.meta.url)), { recursive: true });
  const out = fileURLToPath(new URL(`./results/${date}-browse.md`, import.meta.url));
  writeFileAtomicSync(out, report);
  process.stdout.write(`${report}\nwritten to ${out}\n`);
} finally {
  rmSync(root, { recursive: true, force: true });
}
