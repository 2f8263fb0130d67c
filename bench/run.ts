// Side-by-side benchmark: vaultik (local-directory store) against restic (local repository,
// compression auto) on the same corpus, in the same run, alternating A B A B so machine noise
// hits both alike. Reports medians and vaultik/restic ratios, and writes them to bench/results/.
//
//   npm run bench                      full corpus (/usr/share + /usr/lib/x86_64-linux-gnu + 200 MiB random)
//   npm run bench -- --small           /usr/share/doc + 20 MiB random, 2 rounds: a quick look
//   npm run bench -- --rounds 5        more rounds
//   npm run bench -- --big-file 10     scale run: one 10 GiB file (vaultik RSS must stay flat)
//   npm run bench -- --many-files 1000000   scale run: a million small files
//   npm run bench -- --s3              scale run: vaultik on s3rver vs on a local directory
//
// Not a test: nothing here asserts; the numbers are for people.

import { execFileSync, spawn } from "node:child_process";
import { createCipheriv, createHash } from "node:crypto";
import { cpus, hostname, tmpdir } from "node:os";
import { mkdir, mkdtemp, open, readdir, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BIN = join(ROOT, "bin", "vaultik.js");
const args = process.argv.slice(2);
const flag = (name: string) => args.includes(name);
const value = (name: string, fallback: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const SMALL = flag("--small");
const ROUNDS = value("--rounds", SMALL ? 2 : 3);
const MiB = 1024 * 1024;

interface Measure {
  seconds: number;
  rssMiB: number;
}

/** Runs a command under GNU time; returns wall time and peak RSS, throws on failure. */
async function measure(cmd: string, argv: string[], env: NodeJS.ProcessEnv = {}): Promise<Measure> {
  const started = process.hrtime.bigint();
  const child = spawn("/usr/bin/time", ["-v", cmd, ...argv], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  let out = "";
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((r) => child.once("close", r));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (code !== 0) throw new Error(`${cmd} ${argv.join(" ")} exited ${code}\n${out.slice(-2000)}\n${err.slice(-4000)}`);
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(err);
  return { seconds, rssMiB: rss ? Number(rss[1]) / 1024 : NaN };
}

async function du(path: string): Promise<number> {
  return Number(execFileSync("du", ["-sb", path]).toString().split("\t")[0]);
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
  const config = (work: string) => join(work, "vaultik.yml");
  return {
    name: store === "s3" ? "vaultik-s3" : "vaultik",
    async init(repo, work, corpus) {
      keyFile = join(work, "key.txt");
      if (!existsSync(keyFile)) execFileSync(process.execPath, [BIN, "keygen", "-o", keyFile], { stdio: "ignore" });
      const recipient = execFileSync("sed", ["-n", "s/^# public key: //p", keyFile]).toString().trim();
      const storeYaml =
        store === "local"
          ? `store: ${repo}`
          : `s3:\n  endpoint: ${s3!.endpoint}\n  bucket: ${s3!.bucket}\n  prefix: ${repo.split("/").pop()}\n  access_key_id: S3RVER\n  secret_access_key: S3RVER\n  force_path_style: true`;
      await writeFile(config(work), `age_recipient: ${recipient}\nsource_dirs: [${corpus}]\n${storeYaml}\nindex_path: ${work}/state-${repo.split("/").pop()}/index.sqlite\n`);
    },
    backup: (_repo, work) => measure(process.execPath, [BIN, "backup", config(work), "--cron"]),
    restore: (repo, work, target) =>
      store === "local"
        ? measure(process.execPath, [BIN, "restore", repo, "", "latest", target], { VAULTIK_PRIVATE_KEY_FILE: keyFile })
        : measure(process.execPath, [BIN, "restore", "--config", config(work), "latest", target], { VAULTIK_PRIVATE_KEY_FILE: keyFile }),
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function sideBySide(tools: Tool[], work: string): Promise<Map<string, Record<string, number[]>>> {
  const corpus = join(work, "corpus");
  await mkdir(corpus, { recursive: true });
  console.log(`building corpus in ${corpus} …`);
  await makeCorpus(corpus);
  const corpusBytes = await du(corpus);
  const files = Number(execFileSync("sh", ["-c", `find ${corpus} -type f | wc -l`]).toString());
  console.log(`corpus: ${(corpusBytes / MiB).toFixed(0)} MiB, ${files} files`);
  // Warm the page cache once, so the first tool does not pay for cold reads alone.
  execFileSync("sh", ["-c", `find ${corpus} -type f -print0 | xargs -0 cat > /dev/null`]);
  const results = new Map<string, Record<string, number[]>>(tools.map((t) => [t.name, {}]));
  const add = (tool: string, key: string, v: number) => ((results.get(tool)![key] ??= []).push(v));
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? tools : [...tools].reverse();
    for (const t of order) {
      const repo = join(work, `repo-${t.name}-${round}`);
      await t.init(repo, work, corpus);
      const full = await t.backup(repo, work, corpus);
      add(t.name, "full backup (s)", full.seconds);
      add(t.name, "full backup peak RSS (MiB)", full.rssMiB);
      const again = await t.backup(repo, work, corpus);
      add(t.name, "unchanged re-run (s)", again.seconds);
      if (existsSync(repo)) add(t.name, "repository (MiB)", (await du(repo)) / MiB);
      console.log(`  round ${round + 1} ${t.name}: full ${full.seconds.toFixed(1)} s (${full.rssMiB.toFixed(0)} MiB RSS), unchanged ${again.seconds.toFixed(1)} s`);
    }
    const changed = await churn(corpus, round);
    for (const t of order) {
      const repo = join(work, `repo-${t.name}-${round}`);
      const m = await t.backup(repo, work, corpus);
      add(t.name, "1% changed re-run (s)", m.seconds);
      // A fresh target each time, and nothing deleted until the end: on this ext4 (mounted with
      // `discard`) creating files right after an `rm -rf` of a 1.6 GB tree cost up to 3x the
      // system time, which punished whichever tool ran next.
      const target = join(work, `restore-${t.name}-${round}`);
      const r = await t.restore(repo, work, target);
      add(t.name, "full restore (s)", r.seconds);
      add(t.name, "restore peak RSS (MiB)", r.rssMiB);
      console.log(`  round ${round + 1} ${t.name}: ${changed} files changed → ${m.seconds.toFixed(1)} s, restore ${r.seconds.toFixed(1)} s`);
    }
  }
  return results;
}

function table(results: Map<string, Record<string, number[]>>, a: string, b: string): string {
  const ra = results.get(a)!;
  const rb = results.get(b)!;
  const rows = [`| measure | ${a} | ${b} | ${a}/${b} |`, "| --- | ---: | ---: | ---: |"];
  for (const key of Object.keys(ra)) {
    if (!rb[key]) continue;
    const va = median(ra[key]!);
    const vb = median(rb[key]!);
    rows.push(`| ${key} | ${va.toFixed(1)} | ${vb.toFixed(1)} | ${(va / vb).toFixed(2)} |`);
  }
  return rows.join("\n");
}

async function scaleBigFile(work: string, gib: number): Promise<string> {
  const corpus = join(work, "big");
  await mkdir(corpus);
  console.log(`writing a ${gib} GiB file …`);
  const fh = await open(join(corpus, "big.bin"), "w");
  for (let i = 0; i < gib * 1024; i++) await fh.write(pseudoRandom(MiB, `big${i}`));
  await fh.close();
  const t = vaultikTool("local");
  const repo = join(work, "repo-big");
  await t.init(repo, work, corpus);
  const m = await t.backup(repo, work, corpus);
  const r = await t.restore(repo, work, join(work, "restore-big"));
  return `| one ${gib} GiB file | backup ${m.seconds.toFixed(1)} s, peak RSS ${m.rssMiB.toFixed(0)} MiB | restore ${r.seconds.toFixed(1)} s, peak RSS ${r.rssMiB.toFixed(0)} MiB |`;
}

async function scaleManyFiles(work: string, count: number): Promise<string> {
  const corpus = join(work, "many");
  console.log(`writing ${count} small files …`);
  for (let d = 0; d < Math.ceil(count / 1000); d++) {
    const dir = join(corpus, `d${d}`);
    await mkdir(dir, { recursive: true });
    for (let i = 0; i < 1000 && d * 1000 + i < count; i++) await writeFile(join(dir, `f${i}`), `file ${d} ${i}\n`);
  }
  const t = vaultikTool("local");
  const repo = join(work, "repo-many");
  await t.init(repo, work, corpus);
  const m = await t.backup(repo, work, corpus);
  const again = await t.backup(repo, work, corpus);
  return `| ${count} small files | backup ${m.seconds.toFixed(1)} s, peak RSS ${m.rssMiB.toFixed(0)} MiB | unchanged re-run ${again.seconds.toFixed(1)} s |`;
}

async function scaleS3(work: string): Promise<string> {
  const { startS3rver } = await import("../test/helpers/s3rver.js");
  const server = await startS3rver("vaultik-bench");
  try {
    const results = await sideBySide([vaultikTool("s3", server), vaultikTool("local")], join(work, "s3"));
    return table(results, "vaultik-s3", "vaultik");
  } finally {
    await server.close();
  }
}

async function main(): Promise<void> {
  if (!existsSync(join(ROOT, "dist", "cli", "main.js"))) execFileSync("npm", ["run", "build"], { cwd: ROOT, stdio: "inherit" });
  const work = await mkdtemp(join(tmpdir(), "vaultik-bench-"));
  const cpu = cpus()[0]?.model ?? "unknown CPU";
  const vaultikVersion = execFileSync(process.execPath, [BIN, "version"]).toString().trim();
  const lines: string[] = [];
  try {
    if (flag("--big-file")) lines.push(await scaleBigFile(work, value("--big-file", 10)));
    else if (flag("--many-files")) lines.push(await scaleManyFiles(work, value("--many-files", 1_000_000)));
    else if (flag("--s3")) lines.push(await scaleS3(work));
    else {
      const resticVersion = ensureRestic();
      lines.push(`versions: ${vaultikVersion}; ${resticVersion}`);
      const results = await sideBySide([vaultikTool("local"), restic], work);
      lines.push("", table(results, "vaultik", "restic"));
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const header = [
    `# vaultik benchmark ${new Date().toISOString()}`,
    "",
    `machine: ${hostname()}, ${cpu}, ${cpus().length} cores, node ${process.version}`,
    `mode: ${args.join(" ") || "full corpus"}, ${ROUNDS} round(s), medians`,
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
}

await main();
