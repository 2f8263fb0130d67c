// `vaultik dump` of one big file of incompressible data (issue 16 item 4): wall time and peak
// RSS of `vaultik dump … > /dev/null` under /usr/bin/time -v, against `cat` of the source file
// (the ratio is the result; both read warm or cold alike is not promised: the source was just
// written, the repository too). The target: 10 GiB in at most 256 MB of RSS.
//
//   npm run build && npm run bench:dump                 2 GiB
//   npm run bench:dump -- --size-gib 10 --verify        10 GiB, and check the dumped bytes' SHA-256
//
// Needs about 2.2 times the size free in the temp directory (source + repository).

import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { generateIdentity } from "../dist/crypto/keys.js";

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const GiB = 1024 ** 3;
const SIZE = Math.round(arg("--size-gib", 2) * GiB);
const VERIFY = process.argv.includes("--verify");
const BIN = fileURLToPath(new URL("../bin/vaultik.js", import.meta.url));
const RESULTS = fileURLToPath(new URL("./results/", import.meta.url));

const fs = statfsSync(tmpdir());
const free = fs.bavail * fs.bsize;
if (free < 2.2 * SIZE) {
  console.error(`needs ${(2.2 * SIZE / GiB).toFixed(1)} GiB free in ${tmpdir()}, has ${(free / GiB).toFixed(1)} GiB: pass a smaller --size-gib`);
  process.exit(2);
}

interface Timed {
  seconds: number;
  rssKiB: number;
  exit: number;
}

/** Runs `command` in bash under /usr/bin/time -v; stdout of the command goes where it redirects. */
function timed(command: string, env: NodeJS.ProcessEnv = process.env): Timed {
  const p = spawnSync("bash", ["-c", `/usr/bin/time -v bash -c '${command.replace(/'/g, "'\\''")}'`], { env, encoding: "utf8", maxBuffer: 1 << 26 });
  const field = (label: string) => p.stderr.split("\n").find((l) => l.trim().startsWith(label))?.split(": ").pop()?.trim() ?? "";
  const wall = field("Elapsed (wall clock) time").split(":").map(Number);
  const seconds = wall.reduce((acc, v) => acc * 60 + v, 0);
  if (p.status !== 0) console.error(p.stderr);
  return { seconds, rssKiB: Number(field("Maximum resident set size (kbytes)")), exit: p.status ?? -1 };
}

const root = mkdtempSync(join(tmpdir(), "vaultik-bench-dump-"));
try {
  const source = join(root, "source");
  mkdirSync(source);
  const file = join(source, "big.bin");
  console.error(`writing ${(SIZE / GiB).toFixed(1)} GiB of random bytes…`);
  execFileSync("bash", ["-c", `head -c ${SIZE} /dev/urandom > '${file}'`]);
  const keys = await generateIdentity();
  const config = join(root, "vaultik.yml");
  writeFileSync(config, `age_recipient: ${keys.recipient}\nsource_dirs: [${source}]\nstore: ${root}/repo\nindex_path: ${root}/index.sqlite\n`);
  console.error("backing up…");
  const backup = timed(`${process.execPath} ${BIN} backup ${config} > /dev/null`);
  const env = { ...process.env, VAULTIK_PRIVATE_KEY: keys.identity };
  console.error("dumping…");
  const dump = timed(`${process.execPath} ${BIN} dump ${root}/repo "" latest ${file} > /dev/null`, env);
  const cat = timed(`cat '${file}' > /dev/null`);
  let verified = "not checked (pass --verify)";
  if (VERIFY) {
    const want = execFileSync("sha256sum", [file], { encoding: "utf8" }).split(" ")[0];
    const got = execFileSync("bash", ["-c", `${process.execPath} ${BIN} dump ${root}/repo "" latest ${file} | sha256sum`], { env, encoding: "utf8" }).split(" ")[0];
    verified = got === want ? "SHA-256 of the dumped bytes equals the source's" : `MISMATCH: ${got} vs ${want}`;
  }
  const mib = SIZE / 2 ** 20;
  const date = new Date().toISOString().slice(0, 16).replace(/[-:]/g, "").replace("T", "-");
  const report = [
    `# vaultik dump of one ${(SIZE / GiB).toFixed(1)} GiB file (${date})`,
    "",
    `Machine: ${cpus()[0]?.model ?? "?"}, ${cpus().length} cores, load ${loadavg().map((l) => l.toFixed(1)).join(" ")} at the end (shared host).`,
    "Directory store; default chunk size; random (incompressible) data; the source and repository were just written (page cache warm for both).",
    "",
    "| run | wall | MiB/s | peak RSS | exit |",
    "| --- | ---: | ---: | ---: | ---: |",
    `| backup | ${backup.seconds.toFixed(1)} s | ${(mib / backup.seconds).toFixed(0)} | ${(backup.rssKiB / 1024).toFixed(0)} MiB | ${backup.exit} |`,
    `| \`vaultik dump … > /dev/null\` | ${dump.seconds.toFixed(1)} s | ${(mib / dump.seconds).toFixed(0)} | ${(dump.rssKiB / 1024).toFixed(0)} MiB | ${dump.exit} |`,
    `| \`cat source > /dev/null\` | ${cat.seconds.toFixed(1)} s | ${(mib / cat.seconds).toFixed(0)} | ${(cat.rssKiB / 1024).toFixed(0)} MiB | ${cat.exit} |`,
    "",
    `dump / cat wall time: ${(dump.seconds / cat.seconds).toFixed(1)}. Target: peak RSS ≤ 256 MB for 10 GiB: ${dump.rssKiB * 1024 <= 256e6 ? "met" : "NOT met"} (${((dump.rssKiB * 1024) / 1e6).toFixed(0)} MB). Content: ${verified}.`,
    "",
  ].join("\n");
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(join(RESULTS, `${date}-dump.md`), report);
  process.stdout.write(report);
} finally {
  rmSync(root, { recursive: true, force: true });
}
