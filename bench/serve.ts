// `vaultik serve` at fleet scale (issue 18): 20 hosts × 100 snapshots in a directory repository,
// then the server's first poll (every snapshot summarized once), a second poll (nothing new),
// the time /api/overview takes to answer over HTTP, and the memory the server holds.
//
//   npx tsx --expose-gc bench/serve.ts [HOSTS] [SNAPSHOTS] [FILES_PER_SNAPSHOT]
//
// Snapshots are crafted (entries only, no file content: test/helpers/craft-snapshot.ts), which is
// what the dashboard reads of a real one; content only adds blobs, which the server never reads
// for the overview.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateIdentity, parseIdentity } from "../src/crypto/keys.js";
import { Repository } from "../src/repo/repository.js";
import { Fleet } from "../src/serve/fleet.js";
import { startServeServer } from "../src/serve/http.js";
import { SnapshotCache } from "../src/snapshot/cache.js";
import type { SnapshotEntry } from "../src/snapshot/schema.js";
import { openFsStore } from "../src/store/fs.js";
import { craftEntries } from "../test/helpers/craft-snapshot.js";

const HOSTS = Number(process.argv[2] ?? 20);
const SNAPSHOTS = Number(process.argv[3] ?? 100);
const FILES = Number(process.argv[4] ?? 200);
const HOUR = 3600_000;

const gc = (globalThis as { gc?: () => void }).gc;
const heap = () => {
  gc?.();
  return process.memoryUsage().heapUsed;
};
const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "vaultik-bench-serve-"));
  try {
    const keys = await generateIdentity();
    const repo = new Repository(openFsStore(join(dir, "repo")));
    const now = Date.UTC(2026, 10, 28, 6);
    let t = performance.now();
    for (let h = 0; h < HOSTS; h++) {
      for (let s = 0; s < SNAPSHOTS; s++) {
        const entries: SnapshotEntry[] = [{ path: "srv", type: "dir", mode: 0o755, uid: 0, gid: 0, size: 0, mtimeNs: 0n }];
        for (let f = 0; f < FILES; f++) {
          entries.push({ path: `srv/f${String(f).padStart(5, "0")}`, type: "file", mode: 0o644, uid: 0, gid: 0, size: 1000 * (f + s), mtimeNs: BigInt(now) * 1_000_000n });
        }
        // Host 0 stops a week ago: one stale row.
        const time = new Date(now - (SNAPSHOTS - s) * 6 * HOUR - (h === 0 ? 168 * HOUR : 0));
        await craftEntries({ repo, recipient: keys.recipient, host: `host-${String(h).padStart(2, "0")}`, time }, entries);
      }
    }
    console.log(`crafted ${HOSTS} hosts × ${SNAPSHOTS} snapshots × ${FILES} files in ${((performance.now() - t) / 1000).toFixed(1)} s`);

    const base = heap();
    const cache = SnapshotCache.open(join(dir, "cache"));
    const identities = [parseIdentity(keys.identity)];
    const fleet = new Fleet({
      repos: [{ slug: "bench", repo, retention: { keepDaily: 7, keepWeekly: 4 }, staleAfterMs: 26 * HOUR, hostStaleAfterMs: new Map() }],
      identities,
      cache,
      now: () => now,
    });
    t = performance.now();
    await fleet.poll();
    const first = performance.now() - t;
    t = performance.now();
    await fleet.poll();
    const second = performance.now() - t;
    const held = heap() - base;
    const server = await startServeServer({ fleet, identities, cache, host: "127.0.0.1", port: 0 });
    try {
      const times: number[] = [];
      let bytes = 0;
      for (let i = 0; i < 50; i++) {
        const s = performance.now();
        const res = await fetch(new URL("/api/overview", server.url));
        bytes = (await res.arrayBuffer()).byteLength;
        times.push(performance.now() - s);
      }
      times.sort((a, b) => a - b);
      const hostTimes: number[] = [];
      for (let i = 0; i < 20; i++) {
        const s = performance.now();
        await (await fetch(new URL(`/api/repos/bench/hosts/host-${String(i % HOSTS).padStart(2, "0")}`, server.url))).arrayBuffer();
        hostTimes.push(performance.now() - s);
      }
      hostTimes.sort((a, b) => a - b);
      console.log(`first poll: ${(first / 1000).toFixed(1)} s (${fleet.summaryCount} snapshots summarized); second poll: ${second.toFixed(0)} ms`);
      console.log(`GET /api/overview: median ${times[25]!.toFixed(1)} ms, max ${times[49]!.toFixed(1)} ms, ${bytes} bytes`);
      console.log(`GET /api/repos/:repo/hosts/:host (100 snapshots + retention): median ${hostTimes[10]!.toFixed(1)} ms`);
      console.log(`heap held by the fleet after polls: ${mib(held)}${gc ? "" : " (run with --expose-gc for an exact figure)"}; RSS ${mib(process.memoryUsage().rss)}`);
    } finally {
      await server.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
