// Side-by-side benchmark: vaultik (local-directory store) against restic (local repository,
// compression auto) on the same corpus, in the same run, alternating A B A B so machine noise
// hits both alike. Prints issue 17's table (medians of the per-round vaultik/restic ratios, peak
// RSS), vaultik's main-thread CPU per GiB, which targets are met, and every measure; writes the
// same to bench/results/.
//
//   npm run bench                      full corpus (/usr/share + /usr/lib/x86_64-linux-gnu + 200 MiB random), 3 rounds
//   npm run bench -- --small           /usr/share/doc + 20 MiB random, 2 rounds: a quick look
//   npm run bench -- --rounds 5        more rounds
//   npm run bench -- --workers 15      VAULTIK_WORKERS=15 for every vaultik run (memory must not grow with it)
//   npm run bench -- --big-file 10     scale run: one 10 GiB file, vaultik and restic, 1 round
//   npm run bench -- --many-files 1000000   scale run: a million small files, vaultik alone
//   npm run bench -- --s3              scale run: vaultik on s3rver vs on a local directory
//
// Not a test: nothing here asserts; the numbers are for people.

import { execFileSync, spawn } from "node:child_process";
import { createCipheriv, createHash } from "node:crypto";
import { cpus, hostname, tmpdir } from "node:os";
import { mkdir, mkdtemp, open, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ThreadTimes } from "../src/util/thread-times.js";
import { M, cpuTable, detailTable, issueTable, median, scaleTable, targets, type Run, type Series } from "./report.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BIN = join(ROOT, "bin", "vaultik.js");
const args = process.argv.slice(2);
const flag = (name: string) => args.includes(name);
const value = (name: string, fallback: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const SMALL = flag("--small");
const SCALE = flag("--big-file") || flag("--many-files");
// A 10 GiB file or a million files takes long enough that one round is the default.
const ROUNDS = value("--rounds", SMALL ? 2 : SCALE ? 1 : 3);
const WORKERS = flag("--workers") ? value("--workers", NaN) : undefined;
if (WORKERS !== undefined && !(Number.isInteger(WORKERS) && WORKERS >= 0)) throw new Error("--workers needs a whole number");
const MiB = 1024 * 1024;

interface Measure {
  seconds: number;
  rssMiB: number;
  /** user + system time of the whole process, from GNU time. */
  cpuSeconds: number;
  /** vaultik only: its own /proc accounting, written at exit (VAULTIK_THREAD_TIMES). */
  threads?: ThreadTimes;
}

/** Runs a command under GNU time; returns wall time, peak RSS and CPU time, throws on failure. */
async function measure(cmd: string, argv: string[], env: NodeJS.ProcessEnv = {}): Promise<Measure> {
  const timesFile = env["VAULTIK_THREAD_TIMES"];
  // A file left by an earlier run must not stand in for one this run failed to write.
  if (timesFile) await rm(timesFile, { force: true });
  const started = process.hrtime.bigint();
  const child = spawn("/usr/bin/time", ["-v", cmd, ...argv], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  let out = "";
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((r) => child.once("close", r));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (code !== 0) throw new Error(`${cmd} ${argv.join(" ")} exited ${code}\n${out.slice(-2000)}\n${err.slice(-4000)}`);
  const field = (name: string) => Number(new RegExp(`${name}: ([\\d.]+)`).exec(err)?.[1] ?? NaN);
  // GNU time says "kbytes": they are KiB.
  const m: Measure = {
    seconds,
    rssMiB: field("Maximum resident set size \\(kbytes\\)") / 1024,
    cpuSeconds: field("User time \\(seconds\\)") + field("System time \\(seconds\\)"),
  };
  if (timesFile && existsSync(timesFile)) m.threads = JSON.parse(await readFile(timesFile, "utf8")) as ThreadTimes;
  return m;
}

async function du(path: string): Promise<number> {
  return Number(execFileSync("du", ["-sb", path]).toString().split("\t")[0]);
}

/** Regular files under `dir` and their bytes: the new data a first backup reads. */
function corpusSize(dir: string): { bytes: number; files: number } {
  const sizes = execFileSync("find", [dir, "-type", "f", "-printf", "%s\n"], { maxBuffer: 1 << 30 }).toString().split("\n");
  let bytes = 0;
  let files = 0;
  for (const s of sizes) {
    if (s === "") continue;
    bytes += Number(s);
    files++;
  }
  return { bytes, files };
}

function ensureRestic(): string {
  try {
    return execFileSync("restic", ["version"]).toString().trim();
  } catch {
    console.log("restic not found: installing Debian's restic");
    execFileSync("sh", ["-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic"], { stdio: "inherit" });
    return execFileSync("restic", ["version"]).toString().trim();
  }
}

/** Deterministic pseudo-random bytes: an AES-CTR keystream keyed by the seed (fast, repeatable). */
function pseudoRandom(size: number, seed: string): Buffer {
  const key = createHash("sha256").update(seed).digest();
  return createCipheriv("aes-256-ctr", key, Buffer.alloc(16)).update(Buffer.alloc(size));
}

async function makeCorpus(dir: string): Promise<void> {
  const sources = SMALL ? ["/usr/share/doc"] : ["/usr/share", "/usr/lib/x86_64-linux-gnu"];
  for (const s of sources) {
    // cp -a keeps symlinks as symlinks; unreadable special files are skipped by both tools.
    execFileSync("cp", ["-a", "--no-preserve=ownership", s, join(dir, s.replaceAll("/", "_"))], { stdio: "ignore" });
  }
  const random = join(dir, "random");
  await mkdir(random);
  const total = SMALL ? 20 * MiB : 200 * MiB;
  for (let i = 0; i < total / (10 * MiB); i++) await writeFile(join(random, `r${i}.bin`), pseudoRandom(10 * MiB, `r${i}`));
}

async function makeBigFile(dir: string, gib: number): Promise<void> {
  console.log(`writing a ${gib} GiB file …`);
  const fh = await open(join(dir, "big.bin"), "w");
  for (let i = 0; i < gib * 1024; i++) await fh.write(pseudoRandom(MiB, `big${i}`));
  await fh.close();
}

async function makeManyFiles(dir: string, count: number): Promise<void> {
  console.log(`writing ${count} small files …`);
  for (let d = 0; d < Math.ceil(count / 1000); d++) {
    const sub = join(dir, `d${d}`);
    await mkdir(sub, { recursive: true });
    for (let i = 0; i < 1000 && d * 1000 + i < count; i++) await writeFile(join(sub, `f${i}`), `file ${d} ${i}\n`);
  }
}

/** Changes 1% of the regular files (in place, a few bytes in the middle): the "daily churn" run. */
async function churn(dir: string, round: number): Promise<number> {
  const files: string[] = [];
  async function visit(d: string): Promise<void> {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await visit(p);
      else if (e.isFile()) files.push(p);
    }
  }
  await visit(dir);
  files.sort();
  let changed = 0;
  for (let i = round % 100; i < files.length; i += 100) {
    const fh = await open(files[i]!, "r+");
    const size = (await fh.stat()).size;
    await fh.write(Buffer.from(`churn ${round} ${i}`), 0, undefined, Math.floor(size / 2));
    await fh.close();
    changed++;
  }
  return changed;
}

interface Tool {
  name: string;
  init(repo: string, work: string, corpus: string): Promise<void>;
  backup(repo: string, work: string, corpus: string): Promise<Measure>;
  restore(repo: string, work: string, target: string): Promise<Measure>;
}

const RESTIC_ENV = { RESTIC_PASSWORD: "bench-password", RESTIC_CACHE_DIR: join(tmpdir(), "vaultik-bench-restic-cache") };

const restic: Tool = {
  name: "restic",
  async init(repo) {
    execFileSync("restic", ["init", "--repo", repo, "--repository-version", "2"], { env: { ...process.env, ...RESTIC_ENV }, stdio: "ignore" });
  },
  backup: (repo, _work, corpus) => measure("restic", ["--repo", repo, "backup", "--compression", "auto", "--quiet", corpus], RESTIC_ENV),
  restore: (repo, _work, target) => measure("restic", ["--repo", repo, "restore", "latest", "--target", target, "--quiet"], RESTIC_ENV),
};

function vaultikTool(store: "local" | "s3", s3?: { endpoint: string; bucket: string }): Tool {
  let keyFile = "";
  let env: NodeJS.ProcessEnv = {};
  const config = (work: string) => join(work, "vaultik.yml");
  return {
    name: store === "s3" ? "vaultik-s3" : "vaultik",
    async init(repo, work, corpus) {
      keyFile = join(work, "key.txt");
      env = { VAULTIK_THREAD_TIMES: join(work, `thread-times-${repo.split("/").pop()}.json`) };
      if (WORKERS !== undefined) env["VAULTIK_WORKERS"] = String(WORKERS);
      if (!existsSync(keyFile)) execFileSync(process.execPath, [BIN, "keygen", "-o", keyFile], { stdio: "ignore" });
      const recipient = execFileSync("sed", ["-n", "s/^# public key: //p", keyFile]).toString().trim();
      const storeYaml =
        store === "local"
          ? `store: ${repo}`
          : `s3:\n  endpoint: ${s3!.endpoint}\n  bucket: ${s3!.bucket}\n  prefix: ${repo.split("/").pop()}\n  access_key_id: S3RVER\n  secret_access_key: S3RVER\n  force_path_style: true`;
      await writeFile(config(work), `age_recipient: ${recipient}\nsource_dirs: [${corpus}]\n${storeYaml}\nindex_path: ${work}/state-${repo.split("/").pop()}/index.sqlite\n`);
    },
    backup: (_repo, work) => measure(process.execPath, [BIN, "backup", config(work), "--cron"], env),
    restore: (repo, work, target) =>
      store === "local"
        ? measure(process.execPath, [BIN, "restore", repo, "", "latest", target], { ...env, VAULTIK_PRIVATE_KEY_FILE: keyFile })
        : measure(process.execPath, [BIN, "restore", "--config", config(work), "latest", target], { ...env, VAULTIK_PRIVATE_KEY_FILE: keyFile }),
  };
}

/** Appends one run's wall time, peak RSS and CPU under the measure names `keys` gives. */
function record(s: Series, m: Measure, keys: { time: string; rss: string; main?: string; cpu?: string }): void {
  const add = (key: string, v: number) => (s[key] ??= []).push(v);
  add(keys.time, m.seconds);
  add(keys.rss, m.rssMiB);
  // vaultik's own accounting where it wrote one; GNU time's otherwise (restic).
  if (keys.cpu) add(keys.cpu, m.threads ? m.threads.totalCpuMs / 1000 : m.cpuSeconds);
  if (keys.main && m.threads) add(keys.main, m.threads.mainCpuMs / 1000);
}

const FULL = { time: M.full, rss: M.fullRss, main: M.fullMain, cpu: M.fullCpu };
const UNCHANGED = { time: M.unchanged, rss: M.unchangedRss, main: M.unchangedMain };
const CHANGED = { time: M.changed, rss: M.changedRss };
const RESTORE = { time: M.restore, rss: M.restoreRss, main: M.restoreMain, cpu: M.restoreCpu };

interface Corpus {
  /** "corpus" in the issue's "corpus, machine" column. */
  name: string;
  make(dir: string): Promise<void>;
  /** Whether to measure the 1% changed re-run (a few bytes changed in 1% of the files). */
  churn: boolean;
  /** Remove each restore as soon as it is measured: for one huge file, where the disk would not hold them all. */
  dropRestores?: boolean;
}

interface SideBySide {
  results: Map<string, Series>;
  bytes: number;
  files: number;
}

async function sideBySide(tools: Tool[], work: string, spec: Corpus): Promise<SideBySide> {
  const corpus = join(work, "corpus");
  await mkdir(corpus, { recursive: true });
  console.log(`building corpus in ${corpus} …`);
  await spec.make(corpus);
  const { bytes, files } = corpusSize(corpus);
  console.log(`corpus: ${(bytes / MiB).toFixed(0)} MiB in regular files, ${files} files`);
  // Warm the page cache once, so the first tool does not pay for cold reads alone.
  execFileSync("sh", ["-c", `find ${corpus} -type f -print0 | xargs -0 cat > /dev/null`]);
  const results = new Map<string, Series>(tools.map((t) => [t.name, {}]));
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? tools : [...tools].reverse();
    for (const t of order) {
      const s = results.get(t.name)!;
      const repo = join(work, `repo-${t.name}-${round}`);
      await t.init(repo, work, corpus);
      const full = await t.backup(repo, work, corpus);
      record(s, full, FULL);
      const again = await t.backup(repo, work, corpus);
      record(s, again, UNCHANGED);
      if (existsSync(repo)) (s[M.size] ??= []).push((await du(repo)) / MiB);
      console.log(`  round ${round + 1} ${t.name}: full ${full.seconds.toFixed(1)} s (${full.rssMiB.toFixed(0)} MiB RSS), unchanged ${again.seconds.toFixed(1)} s`);
    }
    const changed = spec.churn ? await churn(corpus, round) : 0;
    for (const t of order) {
      const s = results.get(t.name)!;
      const repo = join(work, `repo-${t.name}-${round}`);
      if (spec.churn) record(s, await t.backup(repo, work, corpus), CHANGED);
      // A fresh target each time, and nothing deleted until the end: on this ext4 (mounted with
      // `discard`) creating files right after an `rm -rf` of a 1.6 GB tree cost up to 3x the
      // system time, which punished whichever tool ran next.
      const target = join(work, `restore-${t.name}-${round}`);
      const r = await t.restore(repo, work, target);
      record(s, r, RESTORE);
      if (spec.dropRestores) await rm(target, { recursive: true, force: true });
      const churned = spec.churn ? `${changed} files changed → ${s[M.changed]!.at(-1)!.toFixed(1)} s, ` : "";
      console.log(`  round ${round + 1} ${t.name}: ${churned}restore ${r.seconds.toFixed(1)} s (${r.rssMiB.toFixed(0)} MiB RSS)`);
    }
  }
  return { results, bytes, files };
}

const cpuModel = cpus()[0]?.model ?? "unknown CPU";
const machine = `${cpus().length} cores (${cpuModel})${WORKERS !== undefined ? `, VAULTIK_WORKERS=${WORKERS}` : ""}`;
const today = new Date().toISOString().slice(0, 10);

function runOf(spec: Corpus, r: SideBySide, tools: [string, string?]): Run {
  const label = `${spec.name} (${(r.bytes / 1e9).toFixed(2)} GB / ${r.files} file${r.files === 1 ? "" : "s"}), ${machine}, ${today}`;
  return { label, bytes: r.bytes, vaultik: r.results.get(tools[0])!, restic: tools[1] ? r.results.get(tools[1]) : undefined };
}

const CPU_NOTE =
  "Main-thread CPU: utime+stime of the thread whose id is the process id (/proc, written by vaultik at exit when VAULTIK_THREAD_TIMES is set), " +
  "median over the rounds, divided by the GiB of regular-file bytes in the corpus (read by the full backup, written by the full restore). " +
  "Total CPU s: full backup / full restore, vaultik from the same /proc figures, restic from GNU time (user + system).";

/**
 * What loading the CLI alone costs the main thread (`vaultik version`, median of 3): every
 * figure above includes it once per run, so on a small corpus it is most of the per-GiB figure.
 */
async function startupNote(work: string, bytes: number): Promise<string> {
  const env = { VAULTIK_THREAD_TIMES: join(work, "thread-times-version.json") };
  const runs: ThreadTimes[] = [];
  for (let i = 0; i < 3; i++) {
    const m = await measure(process.execPath, [BIN, "version"], env);
    if (m.threads) runs.push(m.threads);
  }
  if (runs.length === 0) return "Start-up: vaultik wrote no VAULTIK_THREAD_TIMES (an older build?).";
  const main = median(runs.map((t) => t.mainCpuMs)) / 1000;
  const total = median(runs.map((t) => t.totalCpuMs)) / 1000;
  return (
    `Start-up alone (\`vaultik version\`, median of 3): main-thread CPU ${main.toFixed(2)} s, total ${total.toFixed(2)} s; ` +
    `included once in each run above, i.e. ${(main / (bytes / 1024 ** 3)).toFixed(2)} s/GiB of this corpus.`
  );
}

/** The issue's tables, met/missed, and every measure in detail, for one run of vaultik against restic. */
function sideBySideReport(run: Run, startup: string): { lines: string[]; verdict: string } {
  const t = targets(run);
  const lines = [
    "## vaultik / restic (issue 17 table; medians of the per-round ratios)",
    "",
    issueTable([run]),
    "",
    cpuTable([run]),
    "",
    CPU_NOTE,
    "",
    startup,
    "",
    "## Targets",
    "",
    t.table,
    "",
    t.line,
    "",
    "## Every measure (medians; last column: ratio of the medians)",
    "",
    detailTable(run.vaultik, "vaultik", run.restic && { series: run.restic, name: "restic" }),
  ];
  return { lines, verdict: t.line };
}

async function scaleManyFiles(work: string, count: number): Promise<{ lines: string[]; verdict: string }> {
  const corpus = join(work, "many");
  await mkdir(corpus);
  await makeManyFiles(corpus, count);
  const { bytes } = corpusSize(corpus);
  const t = vaultikTool("local");
  const s: Series = {};
  for (let round = 0; round < ROUNDS; round++) {
    const repo = join(work, `repo-many-${round}`);
    await t.init(repo, work, corpus);
    record(s, await t.backup(repo, work, corpus), FULL);
    record(s, await t.backup(repo, work, corpus), UNCHANGED);
    console.log(`  round ${round + 1}: full ${s[M.full]!.at(-1)!.toFixed(1)} s, unchanged ${s[M.unchanged]!.at(-1)!.toFixed(1)} s`);
  }
  const run: Run = { label: `${count} small files (${(bytes / 1e6).toFixed(1)} MB), ${machine}, ${today}`, bytes, vaultik: s };
  const v = targets(run);
  const perThousand = (key: string) => ((median(s[key] ?? [NaN]) * 1000 * 1000) / count).toFixed(1);
  const lines = [
    scaleTable([run]),
    "",
    `Main-thread CPU per GiB here is per GiB of the files' bytes: with files this small it measures per-file cost. ` +
      `Per 1,000 files: backup ${perThousand(M.fullMain)} ms, unchanged re-run ${perThousand(M.unchangedMain)} ms of main-thread CPU.`,
    "",
    await startupNote(work, bytes),
    "",
    v.table,
    "",
    v.line,
    "",
    detailTable(s, "vaultik"),
  ];
  return { lines, verdict: v.line };
}

async function scaleS3(work: string): Promise<string> {
  const { startS3rver } = await import("../test/helpers/s3rver.js");
  const server = await startS3rver("vaultik-bench");
  try {
    const spec: Corpus = { name: SMALL ? "bench corpus --small" : "bench corpus", make: makeCorpus, churn: true };
    const r = await sideBySide([vaultikTool("s3", server), vaultikTool("local")], join(work, "s3"), spec);
    return detailTable(r.results.get("vaultik-s3")!, "vaultik-s3", { series: r.results.get("vaultik")!, name: "vaultik" });
  } finally {
    await server.close();
  }
}

async function main(): Promise<void> {
  if (!existsSync(join(ROOT, "dist", "cli", "main.js"))) execFileSync("npm", ["run", "build"], { cwd: ROOT, stdio: "inherit" });
  const work = await mkdtemp(join(tmpdir(), "vaultik-bench-"));
  const vaultikVersion = execFileSync(process.execPath, [BIN, "version"]).toString().trim();
  const lines: string[] = [];
  let verdict = "";
  try {
    if (flag("--many-files")) {
      const r = await scaleManyFiles(work, value("--many-files", 1_000_000));
      lines.push(...r.lines);
      verdict = r.verdict;
    } else if (flag("--s3")) lines.push(await scaleS3(work));
    else {
      const resticVersion = ensureRestic();
      lines.push(`versions: ${vaultikVersion}; ${resticVersion}`, "");
      const gib = value("--big-file", 10);
      const spec: Corpus = flag("--big-file")
        ? { name: `one ${gib} GiB file`, make: (d) => makeBigFile(d, gib), churn: false, dropRestores: true }
        : { name: SMALL ? "bench corpus --small" : "bench corpus", make: makeCorpus, churn: true };
      const r = await sideBySide([vaultikTool("local"), restic], work, spec);
      const report = sideBySideReport(runOf(spec, r, ["vaultik", "restic"]), await startupNote(work, r.bytes));
      lines.push(...report.lines);
      verdict = report.verdict;
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const header = [
    `# vaultik benchmark ${new Date().toISOString()}`,
    "",
    `machine: ${hostname()}, ${cpuModel}, ${cpus().length} cores, node ${process.version}`,
    `mode: ${args.join(" ") || "full corpus"}, ${ROUNDS} round(s), medians${WORKERS !== undefined ? `, VAULTIK_WORKERS=${WORKERS}` : ""}`,
    "",
  ];
  const report = [...header, ...lines, ""].join("\n");
  console.log(`\n${report}`);
  const outDir = join(ROOT, "bench", "results");
  await mkdir(outDir, { recursive: true });
  const stamp = new Date().toISOString().slice(0, 16).replace(/[-:]/g, "").replace("T", "-");
  const name = `${stamp}-${args.map((a) => a.replace(/^--/, "")).join("-") || "full"}.md`;
  await writeFile(join(outDir, name), report);
  console.log(`written to bench/results/${name}`);
  if (verdict) console.log(verdict);
}

await main();
