// What the catalog's check against the repository costs an unchanged re-run (issue 20): every
// backup LISTs blobs/ once and forgets blobs that are missing or have another size, so that a
// blob deleted or cut short is uploaded again instead of referenced.
//
//   npm run bench:catalog-check                  /usr/share + /usr/lib/x86_64-linux-gnu, in place
//   npm run bench:catalog-check -- --small       /usr/share/doc
//
// Reports, in the same process and on the same repository: the wall time of unchanged re-runs
// through the CLI, and of the check alone (syncCatalog on the same index and store), as a ratio.
import { execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { syncCatalog } from "../src/backup/prune-sync.js";
import { Catalog } from "../src/catalog/db.js";
import { openFsStore } from "../src/store/fs.js";

const SMALL = process.argv.includes("--small");
const ROUNDS = 5;
const sources = SMALL ? ["/usr/share/doc"] : ["/usr/share", "/usr/lib/x86_64-linux-gnu"];
const bin = new URL("../bin/vaultik.js", import.meta.url).pathname;

function vaultik(args: string[]): string {
  return execFileSync(process.execPath, [bin, ...args], { encoding: "utf8", env: { ...process.env, NODE_NO_WARNINGS: "1" } });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const work = await mkdtemp(join(tmpdir(), "vaultik-bench-catalog-"));
try {
  const recipient = vaultik(["keygen"]).split("\n").find((l) => l.startsWith("# public key: "))!.slice(14);
  const repo = join(work, "repo");
  const index = join(work, "state", "index.sqlite");
  const config = join(work, "vaultik.yml");
  await writeFile(config, `age_recipient: ${recipient}\nsource_dirs: [${sources.join(", ")}]\nstore: ${repo}\nindex_path: ${index}\n`);
  let t = performance.now();
  vaultik(["backup", config, "--cron"]);
  console.log(`full backup of ${sources.join(" ")}: ${((performance.now() - t) / 1000).toFixed(1)} s`);

  const runs: number[] = [];
  const checks: number[] = [];
  let blobs = 0;
  for (let round = 0; round < ROUNDS; round++) {
    t = performance.now();
    vaultik(["backup", config, "--cron"]);
    runs.push(performance.now() - t);
    const catalog = new Catalog(index);
    try {
      blobs = catalog.blobNames().length;
      t = performance.now();
      const forgot = await syncCatalog(catalog, openFsStore(repo));
      checks.push(performance.now() - t);
      if (forgot !== 0) throw new Error(`the check forgot ${forgot} blobs of an intact repository`);
    } finally {
      catalog.close();
    }
  }
  const run = median(runs);
  const check = median(checks);
  console.log(`blobs in the repository: ${blobs}`);
  console.log(`unchanged re-run (median of ${ROUNDS}): ${run.toFixed(0)} ms`);
  console.log(`check alone (median of ${ROUNDS}):      ${check.toFixed(1)} ms`);
  console.log(`ratio check / re-run: ${(check / run).toFixed(4)}`);
} finally {
  await rm(work, { recursive: true, force: true });
}
