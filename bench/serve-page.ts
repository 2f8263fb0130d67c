// The `vaultik serve` page at fleet scale (issue 18's closing note): 20 hosts × 100 snapshots,
// the overview and a host page (its chart draws 100 snapshots) loaded in Debian's headless
// chromium, timed from navigation to the rendered view (<main aria-busy="false">), with the
// page's own figures: the JS heap and how many requests the load made.
//
//   npx tsx bench/serve-page.ts [HOSTS] [SNAPSHOTS] [LOADS]
//
// Snapshots are crafted (entries only: test/helpers/craft-snapshot.ts); the page reads only
// the server's summaries, and bench/serve.ts measures the server side (polls, API times, heap).

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Page } from "playwright-core";
import { generateIdentity, parseIdentity } from "../src/crypto/keys.js";
import { Repository } from "../src/repo/repository.js";
import { Fleet } from "../src/serve/fleet.js";
import { startServeServer } from "../src/serve/http.js";
import { SnapshotCache } from "../src/snapshot/cache.js";
import { openFsStore } from "../src/store/fs.js";
import { craftEntries } from "../test/helpers/craft-snapshot.js";

const HOSTS = Number(process.argv[2] ?? 20);
const SNAPSHOTS = Number(process.argv[3] ?? 100);
const LOADS = Math.max(2, Number(process.argv[4] ?? 11));
const HOUR = 3600_000;
const CHROMIUM = process.env["VAULTIK_TEST_CHROMIUM"] ?? "/usr/bin/chromium";

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Milliseconds from navigation to the rendered view, over `LOADS` fresh loads. */
async function timeLoads(page: Page, url: string, view: string): Promise<{ first: number; median: number; max: number; requests: number; heap: number }> {
  const times: number[] = [];
  let requests = 0;
  const count = () => requests++;
  for (let i = 0; i < LOADS; i++) {
    await page.goto("about:blank"); // every load a fresh document, also for a hash route
    requests = 0;
    page.on("request", count);
    const t = performance.now();
    await page.goto(url);
    await page.waitForSelector(`main[aria-busy="false"][data-view="${view}"]`);
    times.push(performance.now() - t);
    page.off("request", count);
  }
  if (process.env["DIAG"]) console.log(await page.evaluate(() => JSON.stringify(performance.getEntries().map((e) => [e.name.replace(/^http:\/\/[^/]+/, ""), Math.round(e.startTime), Math.round(e.duration)]))));
  const heap = await page.evaluate(() => (performance as unknown as { memory?: { usedJSHeapSize: number } }).memory?.usedJSHeapSize ?? 0);
  return { first: times[0]!, median: median(times.slice(1)), max: Math.max(...times.slice(1)), requests, heap };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "vaultik-bench-serve-page-"));
  try {
    const keys = await generateIdentity();
    const repo = new Repository(openFsStore(join(dir, "repo")));
    const now = Date.now();
    for (let h = 0; h < HOSTS; h++) {
      for (let s = 0; s < SNAPSHOTS; s++) {
        const time = new Date(now - (SNAPSHOTS - s) * 6 * HOUR - (h === 0 ? 168 * HOUR : 0));
        const files = Array.from({ length: 20 }, (_, f) => ({ path: `srv/f${f}`, type: "file" as const, mode: 0o644, uid: 0, gid: 0, size: 4096 * (f + s + h), mtimeNs: 0n }));
        await craftEntries({ repo, recipient: keys.recipient, host: `host-${String(h).padStart(2, "0")}`, time }, [{ path: "srv", type: "dir", mode: 0o755, uid: 0, gid: 0, size: 0, mtimeNs: 0n }, ...files]);
      }
    }
    const identities = [parseIdentity(keys.identity)];
    const cache = SnapshotCache.open(join(dir, "cache"));
    const fleet = new Fleet({
      repos: [{ slug: "bench", repo, retention: { keepDaily: 7, keepWeekly: 4 }, staleAfterMs: 26 * HOUR, hostStaleAfterMs: new Map() }],
      identities,
      cache,
    });
    await fleet.poll();
    // The built page (npm run build): from source, the server would find .ts files in src/serve/web.
    const webDir = fileURLToPath(new URL("../dist/serve/web/", import.meta.url));
    const server = await startServeServer({ fleet, identities, cache, host: "127.0.0.1", port: 0, webDir });
    const context = await chromium.launchPersistentContext(join(dir, "profile"), {
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--enable-precise-memory-info"],
      viewport: { width: 1280, height: 800 },
    });
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      page.on("pageerror", (e) => console.error(`page error: ${e.message}`));
      const overview = await timeLoads(page, new URL("/", server.url).href, "overview");
      const rows = await page.$$eval("tr.host", (r) => r.length);
      const host = await timeLoads(page, new URL("/#/r/bench/h/host-01", server.url).href, "host");
      const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
      console.log(`${HOSTS} hosts × ${SNAPSHOTS} snapshots, ${LOADS} loads each, chromium ${context.browser()?.version() ?? ""}`);
      console.log(`overview (${rows} rows): first ${overview.first.toFixed(0)} ms, then median ${overview.median.toFixed(0)} ms, max ${overview.max.toFixed(0)} ms, ${overview.requests} requests, JS heap ${mib(overview.heap)}`);
      console.log(`host page (chart of ${SNAPSHOTS} snapshots): first ${host.first.toFixed(0)} ms, then median ${host.median.toFixed(0)} ms, max ${host.max.toFixed(0)} ms, ${host.requests} requests, JS heap ${mib(host.heap)}`);
    } finally {
      await context.close();
      await server.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
