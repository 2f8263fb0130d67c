// What restic gives back of issue 15's fidelity tree (test/helpers/fidelity.ts): builds the tree,
// backs it up with the installed restic into a temp local repository, restores it (and, as root,
// once more as uid 65534, to see what a restore without privileges keeps), and compares entry by
// entry. Prints every difference grouped by property, then the table of docs/FIDELITY.md.
// Not a test (restic is not a dependency); run as root for the device node and foreign owners:
//
//   apt-get install -y restic      # Debian bookworm: 0.14.0
//   npx tsx bench/fidelity-restic.ts
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { buildFidelityTree, diffTrees, type Difference } from "../test/helpers/fidelity.js";

const VAULTIK = fileURLToPath(new URL("../bin/vaultik.js", import.meta.url));

/** One row of the table: the entries it is about and the properties that must match for them. */
interface Row {
  what: string;
  paths: RegExp;
  properties?: Difference["property"][];
  /** Compare mtimes to the nanosecond instead of the default microsecond. */
  exactTimes?: boolean;
}

const ROWS: Row[] = [
  { what: "file content and size (plain files)", paths: /^names\/plain\.txt$|^modes\//, properties: ["presence", "content", "size"] },
  { what: "name that is not UTF-8 (`bad-\\xff\\xfe.txt`)", paths: /^names\/bad-/, properties: ["presence", "content"] },
  { what: "`y\\xff` and `y\\xef\\xbf\\xbd` both kept, distinct", paths: /^names\/y/, properties: ["presence", "content"] },
  { what: "name with a newline", paths: /^names\/new/, properties: ["presence", "content"] },
  { what: "hard links: 2-member set", paths: /^links\/pair-/, properties: ["presence", "links"] },
  { what: "hard links: 3-member set across directories", paths: /^links\/(trio-|other\/trio-)/, properties: ["presence", "links"] },
  { what: "100 MiB sparse file: bytes", paths: /^sparse\/holes/, properties: ["presence", "content", "size"] },
  { what: "100 MiB sparse file: holes (blocks allocated within 10%)", paths: /^sparse\/holes/, properties: ["allocated"] },
  { what: "user.* xattrs", paths: /^xattr\//, properties: ["presence", "xattrs"] },
  { what: "POSIX access ACL", paths: /^acl\/access-acl\.txt$|^acl\/default-acl-dir\/inherits/, properties: ["presence", "acl"] },
  { what: "POSIX default ACL on a directory", paths: /^acl\/default-acl-dir$/, properties: ["presence", "acl"] },
  { what: "FIFO", paths: /^special\/fifo$/, properties: ["presence", "type"] },
  { what: "character device 1:3", paths: /^special\/null-device$/, properties: ["presence", "type", "rdev"] },
  { what: "setuid / setgid files", paths: /^modes\/set(uid|gid)$|^owners\/setuid-/, properties: ["mode"] },
  { what: "sticky / setgid directories", paths: /^modes\/(sticky|setgid)-dir$/, properties: ["mode"] },
  { what: "other modes (0600, 0444, 0755)", paths: /^modes\/(private|read-only)$|^\.$/, properties: ["mode"] },
  { what: "owner ids: 65534 (named) and 4242:4343 (no name)", paths: /^owners\//, properties: ["owner"] },
  { what: "file mtimes (to 1 µs)", paths: /^(names|links|xattr|modes|empty)\/[^/]+$/, properties: ["mtime"] },
  { what: "file mtime to the nanosecond (`…123456789`)", paths: /^times\/nanoseconds\.txt$/, properties: ["mtime"], exactTimes: true },
  { what: "directory mtimes (set after contents)", paths: /^(\.|names|links|links\/other|sparse|xattr|acl|special|modes|empty|empty\/empty-dir|symlinks|times)$/, properties: ["mtime"] },
  { what: "symlink mtimes", paths: /^symlinks\//, properties: ["mtime"] },
  { what: "symlink targets", paths: /^symlinks\/(to-plain|dangling)$/, properties: ["presence", "target"] },
  { what: "symlink target that is not UTF-8", paths: /^symlinks\/bad-target$/, properties: ["presence", "target"] },
  { what: "0-byte files, empty directory", paths: /^empty\//, properties: ["presence", "type", "size", "content"] },
];

function restic(args: string[], env: NodeJS.ProcessEnv, asUser?: number): { status: number | null; stdout: string; stderr: string } {
  const [cmd, argv] = asUser === undefined ? ["restic", args] : ["setpriv", [`--reuid=${asUser}`, `--regid=${asUser}`, "--clear-groups", "restic", ...args]];
  return spawnSync(cmd, argv, { env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

function resticOk(args: string[], env: NodeJS.ProcessEnv): string {
  const r = restic(args, env);
  if (r.status !== 0) throw new Error(`restic ${args.join(" ")}: exit ${r.status}\n${r.stderr}`);
  return r.stdout;
}

function verdict(row: Row, diffs: Difference[], exact: Difference[]): string {
  const found = (row.exactTimes ? exact : diffs).filter((d) => row.paths.test(d.path) && (!row.properties || row.properties.includes(d.property)));
  if (found.length === 0) return "yes";
  const shown = found.map((d) => d.text.slice(d.path.length + 2)).slice(0, 2);
  return `**no**: ${shown.join("; ")}${found.length > 2 ? ` (+${found.length - 2} more)` : ""}`.replace(/\|/g, "\\|");
}

/** A user that owns nothing in the tree, to restore as when the bench runs as root. */
const NOBODY = 65534;

const work = mkdtempSync(join(tmpdir(), "vaultik-fidelity-restic-"));
try {
  const asRoot = process.getuid?.() === 0;
  const src = join(work, "src");
  const { skipped } = buildFidelityTree(src, { root: asRoot });
  const repo = join(work, "repo");
  const env = { ...process.env, RESTIC_REPOSITORY: repo, RESTIC_PASSWORD: "x", RESTIC_CACHE_DIR: join(work, "cache") };
  const version = resticOk(["version"], env).trim();
  resticOk(["init"], env);
  resticOk(["backup", src], env);

  const runs: { label: string; status: number | null; stderr: string; diffs: Difference[]; exact: Difference[] }[] = [];
  const restoreAs = (label: string, user?: number): void => {
    const target = join(work, `restore-${label.replace(/\W+/g, "-")}`);
    if (user !== undefined) {
      chmodSync(work, 0o755);
      execFileSync("chmod", ["-R", "a+rX", repo]);
      mkdirSync(target);
      chownSync(target, user, user);
    }
    // The user may read the repository, not write its locks.
    const args = ["restore", "latest", "--target", target, ...(user === undefined ? [] : ["--no-lock"])];
    const { status, stderr } = restic(args, { ...env, RESTIC_CACHE_DIR: join(target, ".cache") }, user);
    if (user !== undefined) rmSync(join(target, ".cache"), { recursive: true, force: true });
    const dst = join(target, src);
    runs.push({ label, status, stderr, diffs: diffTrees(src, dst), exact: diffTrees(src, dst, { mtimeToleranceNs: 0n }) });
  };
  restoreAs(asRoot ? "restore as root" : "restore as the same user");
  if (asRoot) restoreAs(`restore as uid ${NOBODY}`, NOBODY);

  // vaultik, the same way: back up the same tree into a directory store, restore it as root and
  // as the user.
  const keys = execFileSync(process.execPath, [VAULTIK, "keygen"], { encoding: "utf8" });
  const identity = keys.split("\n").find((l) => l.startsWith("AGE-SECRET-KEY-1"))!;
  const recipient = /# public key: (age1\S+)/.exec(keys)![1]!;
  const vrepo = join(work, "vaultik-repo");
  const config = join(work, "vaultik.yml");
  writeFileSync(config, `age_recipient: ${recipient}\nsource_dirs: [${src}]\nstore: ${vrepo}\nindex_path: ${work}/vaultik-index.sqlite\n`);
  execFileSync(process.execPath, [VAULTIK, "backup", config, "--cron"], { stdio: "inherit" });
  const vaultikAs = (label: string, user?: number): void => {
    const target = join(work, `vaultik-${label.replace(/\W+/g, "-")}`);
    mkdirSync(target);
    if (user !== undefined) {
      execFileSync("chmod", ["-R", "a+rX", vrepo]);
      chownSync(target, user, user);
    }
    const argv = [VAULTIK, "restore", vrepo, "", "latest", target];
    const [cmd, args] = user === undefined ? [process.execPath, argv] : ["setpriv", [`--reuid=${user}`, `--regid=${user}`, "--clear-groups", process.execPath, ...argv]];
    const r = spawnSync(cmd, args, { env: { ...process.env, VAULTIK_PRIVATE_KEY: identity }, encoding: "utf8" });
    const dst = join(target, src);
    runs.push({ label: `vaultik, ${label}`, status: r.status, stderr: r.stderr, diffs: diffTrees(src, dst), exact: diffTrees(src, dst, { mtimeToleranceNs: 0n }) });
  };
  vaultikAs(asRoot ? "restore as root" : "restore as the same user");
  if (asRoot) vaultikAs(`restore as uid ${NOBODY}`, NOBODY);

  console.log(`${version}; tree built ${asRoot ? "as root" : "as a user"}${skipped.length ? `, skipped: ${skipped.join("; ")}` : ""}\n`);
  for (const run of runs) {
    console.log(`# ${run.label}: exit ${run.status}, ${run.diffs.length} difference(s)\n${run.stderr.trim()}\n`);
    const byProperty = new Map<string, string[]>();
    for (const d of run.diffs) byProperty.set(d.property, [...(byProperty.get(d.property) ?? []), d.text]);
    for (const [property, texts] of byProperty) console.log(`## ${property} (${texts.length})\n${texts.map((t) => `  ${t}`).join("\n")}\n`);
  }

  console.log(`| What | ${runs.map((r) => (r.label.startsWith("vaultik") ? r.label : `restic 0.14, ${r.label}`)).join(" | ")} |`);
  console.log(`|---|${runs.map(() => "---|").join("")}`);
  for (const row of ROWS) console.log(`| ${row.what} | ${runs.map((r) => verdict(row, r.diffs, r.exact)).join(" | ")} |`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
