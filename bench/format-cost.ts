// What format 2's metadata costs (issue 15): the same corpus backed up by an older vaultik
// (format 1, given as a built checkout) and by this one, in the same run: repository size, the
// snapshot database's size, and the time of an unchanged re-run, alternating A B A B.
//
//   git worktree add /tmp/vaultik-old 881e745 && (cd /tmp/vaultik-old && ln -s $PWD/node_modules . && npm run build)
//   npm run build && npx tsx bench/format-cost.ts --old /tmp/vaultik-old [--corpus DIR] [--rounds 3]
//
// Not a test: the figures depend on the machine; the ratios are the result.

import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const arg = (name: string, fallback?: string): string => {
  const i = process.argv.indexOf(name);
  if (i > 0) return process.argv[i + 1]!;
  if (fallback === undefined) throw new Error(`${name} is required`);
  return fallback;
};
const OLD = arg("--old");
/** One directory, or several separated by commas (the bench corpus: /usr/share,/usr/lib/x86_64-linux-gnu). */
const CORPUS = arg("--corpus", "/usr/share/doc");
const ROUNDS = Number(arg("--rounds", "3"));
const NEW_BIN = fileURLToPath(new URL("../bin/vaultik.js", import.meta.url));
const OLD_BIN = join(OLD, "bin", "vaultik.js");

const root = mkdtempSync(join(tmpdir(), "vaultik-format-cost-"));
const keygen = execFileSync(process.execPath, [NEW_BIN, "keygen"], { encoding: "utf8" });
const recipient = /# public key: (age1\S+)/.exec(keygen)![1]!;

function du(dir: string, under = ""): number {
  let n = 0;
  for (const e of readdirSync(join(dir, under), { withFileTypes: true, recursive: true })) {
    if (e.isFile()) n += statSync(join(e.parentPath, e.name)).size;
  }
  return n;
}

function setup(name: string) {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  const config = join(dir, "vaultik.yml");
  writeFileSync(config, `age_recipient: ${recipient}\nsource_dirs: [${CORPUS.split(",").join(", ")}]\nstore: ${dir}/repo\nindex_path: ${dir}/index.sqlite\n`);
  return { dir, config };
}

function backup(bin: string, config: string): number {
  const t = process.hrtime.bigint();
  execFileSync(process.execPath, [bin, "backup", config, "--cron"], { stdio: ["ignore", "ignore", "inherit"] });
  return Number(process.hrtime.bigint() - t) / 1e9;
}

try {
  const cases = { old: { bin: OLD_BIN, ...setup("old") }, new: { bin: NEW_BIN, ...setup("new") } };
  const first: Record<string, number> = {};
  for (const [k, c] of Object.entries(cases)) first[k] = backup(c.bin, c.config);
  const rerun: Record<string, number[]> = { old: [], new: [] };
  for (let r = 0; r < ROUNDS; r++) for (const [k, c] of Object.entries(cases)) rerun[k]!.push(backup(c.bin, c.config));
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const mib = (n: number) => `${(n / 2 ** 20).toFixed(2)} MiB`;
  const lines = [`format cost on ${CORPUS}, ${ROUNDS} rounds A B A B (${new Date().toISOString()}, load ${loadavg()[0]!.toFixed(1)})`];
  for (const [k, c] of Object.entries(cases)) {
    const snapshots = du(join(c.dir, "repo"), "index");
    lines.push(
      `  ${k}: repository ${mib(du(join(c.dir, "repo")))} (snapshot objects ${mib(snapshots)} for ${1 + ROUNDS} snapshots), ` +
        `first backup ${first[k]!.toFixed(2)} s, unchanged re-run median ${median(rerun[k]!).toFixed(2)} s (runs ${rerun[k]!.map((t) => t.toFixed(2)).join(", ")})`,
    );
  }
  lines.push(`  ratio new/old: unchanged re-run ${(median(rerun["new"]!) / median(rerun["old"]!)).toFixed(2)}, repository ${(du(join(cases.new.dir, "repo")) / du(join(cases.old.dir, "repo"))).toFixed(3)}`);
  console.log(lines.join("\n"));
} finally {
  rmSync(root, { recursive: true, force: true });
}
