// Restore time against a file's chunk count (issue 14 item 3): the same bytes as one file of
// ~100,000 chunks and as one file of ~100 chunks, restored in this process, A B A B, medians.
// Before the fix the first took minutes (a count per chunk row: n² steps); the target is a
// ratio of at most 3. Not a test: the figures depend on the machine, the ratio is the result.
//
//   npm run build && npm run bench:restore-chunks            ~100k chunks (25 MiB)
//   npm run bench:restore-chunks -- --chunks 20000           smaller, for a quick look

import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { generateIdentity, parseIdentity } from "../dist/crypto/keys.js";
import { Repository } from "../dist/repo/repository.js";
import { Restorer } from "../dist/restore/restorer.js";
import { withSnapshot } from "../dist/snapshot/open.js";
import { openFsStore } from "../dist/store/fs.js";

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const CHUNKS = arg("--chunks", 100_000);
const ROUNDS = arg("--rounds", 3);
const SMALL = 256; // the smallest chunk_size: CHUNKS of them make the file
const BYTES = CHUNKS * SMALL;
const BIN = fileURLToPath(new URL("../bin/vaultik.js", import.meta.url));

const keys = await generateIdentity();
const identity = parseIdentity(keys.identity);
const root = mkdtempSync(join(tmpdir(), "vaultik-bench-chunks-"));

interface Case {
  name: string;
  repo: string;
  source: string;
  chunks: number;
}

function prepare(name: string, chunkSize: number, data: Buffer): Case {
  const dir = join(root, name);
  const source = join(dir, "source");
  mkdirSync(source, { recursive: true });
  writeFileSync(join(source, "file.bin"), data);
  const config = join(dir, "vaultik.yml");
  writeFileSync(
    config,
    `age_recipient: ${keys.recipient}\nsource_dirs: [${source}]\nstore: ${dir}/repo\nindex_path: ${dir}/index.sqlite\nchunk_size: ${chunkSize}\n`,
  );
  execFileSync(process.execPath, [BIN, "backup", config, "--json"], { stdio: ["ignore", "ignore", "inherit"] });
  return { name, repo: join(dir, "repo"), source, chunks: 0 };
}

async function restoreOnce(c: Case, data: Buffer): Promise<{ seconds: number; cpuSeconds: number; chunks: number }> {
  const repo = new Repository(openFsStore(c.repo));
  const snapshot = await repo.findSnapshot("latest");
  const target = join(root, `restore-${c.name}`);
  rmSync(target, { recursive: true, force: true });
  try {
    return await withSnapshot(repo, snapshot, [identity], async (reader) => {
      const chunks = [...reader.entries(undefined, true)].reduce((n, e) => n + (e.chunks ?? 0), 0);
      const t = process.hrtime.bigint();
      const cpu = process.cpuUsage();
      const summary = await new Restorer({ repo, identities: [identity], snapshot: reader, target }).run();
      const seconds = Number(process.hrtime.bigint() - t) / 1e9;
      const used = process.cpuUsage(cpu);
      const cpuSeconds = (used.user + used.system) / 1e6;
      const restored = readFileSync(join(target, c.source.slice(1), "file.bin"));
      if (summary.errors.length > 0 || !restored.equals(data)) throw new Error(`${c.name}: restore failed: ${JSON.stringify(summary.errors)}`);
      return { seconds, cpuSeconds, chunks };
    });
  } finally {
    rmSync(target, { recursive: true, force: true });
  }
}

try {
  const data = randomBytes(BYTES);
  // FastCDC's average is a target: these sizes give about CHUNKS and about 100 chunks.
  const many = prepare("many", SMALL, data);
  const few = prepare("few", Math.max(SMALL, 2 ** Math.round(Math.log2(BYTES / 100))), data);
  const times: Record<string, number[]> = { many: [], few: [] };
  const cpu: Record<string, number[]> = { many: [], few: [] };
  for (let round = 0; round < ROUNDS; round++) {
    for (const c of [many, few]) {
      const r = await restoreOnce(c, data);
      c.chunks = r.chunks;
      times[c.name]!.push(r.seconds);
      cpu[c.name]!.push(r.cpuSeconds);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const row = (c: Case) =>
    `  ${String(c.chunks).padStart(6)} chunks: wall ${median(times[c.name]!).toFixed(2)} s (runs ${times[c.name]!.map((t) => t.toFixed(2)).join(", ")}), ` +
    `CPU ${median(cpu[c.name]!).toFixed(2)} s (runs ${cpu[c.name]!.map((t) => t.toFixed(2)).join(", ")})`;
  // CPU time (this process and its writer threads) is the steadier figure on a shared machine.
  const lines = [
    `restore of one file of ${(BYTES / 2 ** 20).toFixed(1)} MiB, ${ROUNDS} rounds A B A B, medians (${new Date().toISOString()}, load ${loadavg()[0]!.toFixed(1)})`,
    row(many),
    row(few),
    `  ratio: wall ${(median(times["many"]!) / median(times["few"]!)).toFixed(2)}, CPU ${(median(cpu["many"]!) / median(cpu["few"]!)).toFixed(2)} (target ≤ 3)`,
  ];
  console.log(lines.join("\n"));
} finally {
  rmSync(root, { recursive: true, force: true });
}
