import { execFileSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { newSnapshotId, parseSnapshotId } from "../src/model/snapshot-id.js";
import { Repository } from "../src/repo/repository.js";
import { openFsStore } from "../src/store/fs.js";
import { spawnCli } from "./helpers/cli.js";
import { backupAt, cliKeys, type LocalRepo } from "./helpers/setup.js";
import { pseudoRandom } from "./helpers/tree.js";

// The page of `vaultik serve` in Debian's chromium, driven by playwright-core (no browser
// download), against the real server (the built binary) on a repository that real backups of
// three hosts made: web-1 fresh, db-1 past 3/4 of stale_after (amber), old-1 stale (red).
// Each step waits for what the page shows once a view is rendered (<main aria-busy="false">
// and the view's rows), never for a fixed time.

const CHROMIUM = process.env["VAULTIK_TEST_CHROMIUM"] ?? "/usr/bin/chromium";
const ARTIFACTS = fileURLToPath(new URL("../test-artifacts/serve/", import.meta.url));
const HOUR = 3600_000;
const STALE_AFTER_HOURS = 26; // the server's default
const RED = "rgb(220, 38, 38)";
const AMBER = "rgb(217, 119, 6)";
const GREEN = "rgb(22, 163, 74)";
/** A file name that must survive the hash route, the query string and Content-Disposition. */
const ODD = "report 2026 #1 & more.bin";

// The in-page callbacks run in chromium; the test's tsconfig has no DOM lib, so the few browser
// globals they use are declared here, as narrowly as they are used.
interface CspEvent {
  violatedDirective: string;
  blockedURI: string;
  sourceFile: string;
  lineNumber: number;
}
declare const document: {
  addEventListener(type: "securitypolicyviolation", listener: (e: CspEvent) => void, options?: { once: boolean }): void;
  createElement(tag: "style"): { textContent: string };
  head: { append(node: unknown): void };
};
declare const window: { __cspSeen: string[]; __vaultikCsp(what: string): Promise<void> };
declare const location: { hash: string };
declare function getComputedStyle(el: unknown): { backgroundColor: string };

let tmp: string;
let server: ChildProcess | undefined;
let base: string;
let context: BrowserContext | undefined;
let page: Page;
let identity: string;
let web1: LocalRepo;
const consoleErrors: string[] = [];
const pageErrors: string[] = [];
const cspViolations: string[] = [];

async function hostRepo(store: string, host: string, recipient: string): Promise<LocalRepo> {
  const dir = join(tmp, host);
  const source = join(dir, "source");
  await mkdir(source, { recursive: true });
  const config = join(dir, "vaultik.yml");
  await writeFile(config, `age_recipient: ${recipient}\nsource_dirs: [${source}]\nstore: ${store}\nindex_path: ${dir}/index.sqlite\nchunk_size: 64KiB\n`);
  return { dir, source, repo: store, config, identity };
}

/**
 * Run records carry store times (object mtimes): the in-process backups ran a moment ago
 * whatever their clock said. Dates each record back to the time its snapshot id holds, as
 * if the runs had happened then.
 */
async function ageRuns(store: string): Promise<void> {
  const runs = join(store, "runs");
  for (const id of await readdir(runs)) {
    const time = parseSnapshotId(id)!.time;
    for (const f of await readdir(join(runs, id))) await utimes(join(runs, id, f), time, time);
  }
}

/** Starts `vaultik serve` on a free port; resolves with its base URL once it listens. */
function startServer(config: string, cache: string): Promise<string> {
  const child = spawnCli(["serve", "--config", config, "--listen", "127.0.0.1:0"], { env: { VAULTIK_PRIVATE_KEY: identity, VAULTIK_CACHE_DIR: cache } });
  server = child;
  return new Promise((resolve, reject) => {
    let out = "";
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) resolve(`http://127.0.0.1:${m[1]}`);
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", (code) => reject(new Error(`vaultik serve exited (${code}) before listening:\n${out}`)));
  });
}

/** Waits until the router has rendered `view` and `selector` is on the page. */
async function rendered(view: string, selector: string): Promise<void> {
  await page.waitForSelector(`main[aria-busy="false"][data-view="${view}"]`);
  await page.waitForSelector(selector);
}

async function shot(name: string): Promise<void> {
  // The body, not the viewport: no empty band below a short page.
  await page.locator("body").screenshot({ path: join(ARTIFACTS, `${name}.png`) });
}

async function dotColour(host: string): Promise<string> {
  return page.$eval(`tr.host[data-host="${host}"] .dot`, (el) => getComputedStyle(el).backgroundColor);
}

async function setUp(): Promise<void> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`chromium is missing at ${CHROMIUM}: install Debian's package (apt-get install -y chromium; .ci/run does it) — the browser tests of vaultik serve need it`);
  }
  tmp = await mkdtemp(join(tmpdir(), "vaultik-serve-browser-"));
  const keys = await cliKeys();
  identity = keys.identity;
  const store = join(tmp, "repo");
  const now = Date.now();

  web1 = await hostRepo(store, "web-1", keys.recipient);
  await mkdir(join(web1.source, "etc"));
  await mkdir(join(web1.source, "data"));
  await writeFile(join(web1.source, "etc", "app.conf"), "listen = 8080\n");
  await writeFile(join(web1.source, "notes.txt"), "first version\n");
  await writeFile(join(web1.source, "data", ODD), pseudoRandom(300_000, 18));
  await backupAt(web1, now - 3 * HOUR, "web-1");
  await writeFile(join(web1.source, "notes.txt"), "second version, longer\n");
  await writeFile(join(web1.source, "data", "added.csv"), "a,b\n1,2\n");
  await backupAt(web1, now - 1 * HOUR, "web-1");

  const db1 = await hostRepo(store, "db-1", keys.recipient);
  await writeFile(join(db1.source, "dump.sql"), "create table t (x int);\n");
  await backupAt(db1, now - (STALE_AFTER_HOURS - 4) * HOUR, "db-1");

  const old1 = await hostRepo(store, "old-1", keys.recipient);
  await writeFile(join(old1.source, "readme"), "this host stopped backing up\n");
  await backupAt(old1, now - 5 * 24 * HOUR, "old-1");

  // db-1's next run started 2 hours ago and died after its first heartbeat: abandoned.
  await new Repository(openFsStore(store)).beat(newSnapshotId(new Date(now - 2 * HOUR), "db-1"), now - 2 * HOUR);
  await ageRuns(store);

  const fleet = join(tmp, "fleet.yml");
  await writeFile(fleet, `age_recipient: ${keys.recipient}\nsource_dirs: [${web1.source}]\nstore: ${store}\nindex_path: ${tmp}/fleet.sqlite\nretention:\n  keep_last: 1\n`);
  base = await startServer(fleet, join(tmp, "cache"));

  await mkdir(ARTIFACTS, { recursive: true });
  context = await chromium.launchPersistentContext(join(tmp, "chromium-profile"), {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1280, height: 800 },
    acceptDownloads: true,
    downloadsPath: join(tmp, "downloads"),
  });
  // Counted across navigations: the binding lives in the context, the listener is added to
  // every document before its own scripts run.
  await context.exposeBinding("__vaultikCsp", (_source, what: string) => void cspViolations.push(what));
  await context.addInitScript(() => {
    const seen: string[] = [];
    window.__cspSeen = seen;
    document.addEventListener("securitypolicyviolation", (e) => {
      const what = `${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`;
      seen.push(what);
      void window.__vaultikCsp(what);
    });
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (m) => {
    if (m.type() === "error") consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => pageErrors.push(e.message));
}

// A setup failure (chromium missing, the server not starting) fails every test with its
// message, rather than leaving them "skipped" as a failed beforeAll does.
let setupError: unknown;
beforeAll(async () => {
  await setUp().catch((err: unknown) => (setupError = err));
}, 120_000);
beforeEach(() => {
  if (setupError !== undefined) throw setupError;
});

afterAll(async () => {
  await context?.close();
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server!.once("exit", r));
    server.kill("SIGTERM");
    await exited;
  }
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe("vaultik serve in headless chromium", () => {
  it("the overview lists the 3 hosts, problems first: the stale one red, the ageing one amber, the fresh one green", async () => {
    await page.goto(`${base}/`);
    await rendered("overview", "tr.host");
    const hosts = await page.$$eval("tr.host", (rows) => rows.map((r) => r.getAttribute("data-host")));
    expect(hosts).toEqual(["old-1", "db-1", "web-1"]);
    expect(await page.getAttribute('tr.host[data-host="old-1"]', "class")).toContain("light-red");
    expect(await dotColour("old-1")).toBe(RED);
    expect(await dotColour("db-1")).toBe(AMBER);
    expect(await dotColour("web-1")).toBe(GREEN);
    expect(await page.textContent('tr.host[data-host="old-1"]')).toContain("5 d ago");
    expect(await page.textContent('tr.host[data-host="db-1"] .run')).toMatch(/^abandoned 2 h( \d+ min)? ago$/);
    expect(await page.textContent('tr.host[data-host="web-1"] .run')).toMatch(/^finished 1 h( \d+ min)? ago$/);
    expect(await page.textContent(".tiles")).toMatch(/3\s*Hosts/);
    await shot("overview");
  });

  it("host → snapshot → a directory → a file: the download's bytes are the source file's", async () => {
    await page.click('tr.host[data-host="web-1"] a.host-link');
    await rendered("host", ".chart canvas");
    expect(await page.$$eval("tr.snap", (rows) => rows.length)).toBe(2);
    expect(await page.textContent(".retention-summary")).toBe("prune would forget 1 of 2 snapshots:");
    expect(await page.textContent(".retention-policy")).toBe("keep_last: 1");
    expect(await page.$$eval("tr.snap.forgotten", (rows) => rows.length)).toBe(1);
    await shot("host");

    await page.click("tr.snap:first-child a.snap-id"); // newest first
    await rendered("snapshot", 'tr.entry[data-name="data"]');
    expect(await page.textContent(".facts")).toContain("web-1");
    await shot("snapshot");

    await page.click('tr.entry[data-name="data"] a.entry-dir');
    await page.waitForSelector(`tr.entry[data-name="${ODD}"]`);
    expect(await page.textContent(".path")).toContain("data");
    await shot("directory");

    const [download] = await Promise.all([page.waitForEvent("download"), page.click(`tr.entry[data-name="${ODD}"] a.entry-file`)]);
    expect(download.suggestedFilename()).toBe(ODD);
    const got = await readFile((await download.path())!);
    expect(got.equals(await readFile(join(web1.source, "data", ODD)))).toBe(true);

    const [tar] = await Promise.all([page.waitForEvent("download"), page.click(".pathbar a.button")]);
    const tarPath = join(tmp, "data.tar");
    await tar.saveAs(tarPath);
    const listing = execFileSync("tar", ["-tf", tarPath], { encoding: "utf8" });
    expect(listing).toContain(ODD);
    expect(listing).toContain("added.csv");
  });

  it("the Changes tab shows what changed since the previous snapshot", async () => {
    await page.click('.tabs a:has-text("Changes")');
    await rendered("snapshot", "tr.change");
    const changes = await page.$$eval("tr.change", (rows) => rows.map((r) => `${r.className} ${r.getAttribute("data-path")}`));
    expect(changes).toContainEqual(`change change-modified ${web1.source}/notes.txt`);
    expect(changes).toContainEqual(`change change-added ${web1.source}/data/added.csv`);
    expect(changes.some((c) => c.includes("app.conf"))).toBe(false);
    await shot("diff");
  });

  it("search finds files by name pattern", async () => {
    await page.click('.tabs a:has-text("Search")');
    await rendered("snapshot", ".searchbar input");
    await page.fill(".searchbar input", "*.conf");
    await page.press(".searchbar input", "Enter");
    await rendered("snapshot", "tr.match");
    expect(await page.$$eval("tr.match", (rows) => rows.map((r) => r.querySelector("td")!.textContent))).toEqual([`${web1.source}/etc/app.conf`]);
    await shot("search");
  });

  it("no page showed the private key", async () => {
    for (const [hash, view] of [["#/", "overview"], ["#/r/fleet/h/web-1", "host"]] as const) {
      await page.evaluate((h) => (location.hash = h), hash);
      await rendered(view, "table");
      expect(await page.content()).not.toContain(identity.slice("AGE-SECRET-KEY-1".length, 40));
    }
  });

  it("every page loaded with 0 JavaScript errors and 0 CSP violations, and a violation would have been seen", async () => {
    expect(pageErrors).toEqual([]);
    expect(consoleErrors).toEqual([]);
    expect(cspViolations).toEqual([]);
    // The control: an inline style, which the CSP blocks, is reported to the same counter.
    const directive = await page.evaluate(
      () =>
        new Promise<string>((resolve) => {
          document.addEventListener("securitypolicyviolation", (e) => resolve(e.violatedDirective), { once: true });
          const style = document.createElement("style");
          style.textContent = "body { color: red }";
          document.head.append(style);
        }),
    );
    expect(directive).toBe("style-src-elem");
    expect(await page.evaluate(() => window.__cspSeen.length)).toBe(1);
  });
});
