import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { backupStore } from "../src/cli/backup.js";
import { Daemon } from "../src/daemon/daemon.js";
import { Repository } from "../src/repo/repository.js";
import { openFsStore } from "../src/store/fs.js";
import { VERSION } from "../src/version.js";
import { vaultik } from "./helpers/cli.js";
import { cliKeys } from "./helpers/setup.js";

// One daemon, two apps on different cron schedules (issue 19), driven by an injected clock: the
// daemon's sleep is the test's hook point, which moves the clock to the planned time at once.
// Backups are real (a directory repository); only the waiting is simulated.

const START = Date.parse("2026-11-28T00:00:30Z");
/** One hour of simulated time: web (every 10 min) runs at start + 6 ticks, db (hourly) at start + 1. */
const END = Date.parse("2026-11-28T01:05:00Z");

let keys: { identity: string; recipient: string };
let dir: string;

beforeAll(async () => {
  keys = await cliKeys();
});
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "vaultik-daemon-apps-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Clocked {
  daemon: Daemon;
  /** Resolves when the daemon sleeps past END: it is idle, its status server still up. */
  atEnd: Promise<void>;
  /** Resolves the next time it parks at END again (after a reload woke it and it ran what was due). */
  nextPark(): Promise<void>;
  done: Promise<void>;
  log: string[];
}

async function startClocked(config: string): Promise<Clocked> {
  let now = START;
  let reachEnd!: () => void;
  let atEnd = new Promise<void>((r) => (reachEnd = r));
  const first = atEnd;
  const log: string[] = [];
  const daemon = new Daemon({
    configPath: config,
    log: (l) => log.push(l),
    openStore: backupStore,
    now: () => now,
    sleep: async (ms, wake) => {
      if (now + ms > END) {
        reachEnd();
        // Parked until stop() wakes it: the test reads the status server meanwhile.
        await new Promise<void>((r) => (wake.aborted ? r() : wake.addEventListener("abort", () => r(), { once: true })));
        return;
      }
      now += ms;
    },
  });
  await daemon.start();
  const done = daemon.run();
  const nextPark = () => (atEnd = new Promise<void>((r) => (reachEnd = r)));
  return { daemon, atEnd: first, nextPark, done, log };
}

/** The config file of a test: the shared repository and index, then `lines`. */
async function writeConfig(lines: string[]): Promise<{ config: string; repo: string }> {
  const repo = join(dir, "repo");
  const config = join(dir, "vaultik.yml");
  await writeFile(config, [`age_recipient: ${keys.recipient}`, `store: ${repo}`, `index_path: ${dir}/state/index.sqlite`, ...lines, ""].join("\n"));
  return { config, repo };
}

async function getJson(url: string): Promise<{ status: number; body: any }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.json() };
}

function sampleOf(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("daemon with two apps", () => {
  it("runs each app on its own schedule with its own host and files, and serves per-app status, history, backups and metrics", async () => {
    const web = join(dir, "web");
    const db = join(dir, "db");
    await mkdir(web);
    await mkdir(db);
    await writeFile(join(web, "index.txt"), "web");
    await writeFile(join(db, "rows.txt"), "db");
    const { config, repo } = await writeConfig([
      "chunk_size: 64KiB",
      "hostname: box",
      "min_time_between_run: 0s",
      "status:",
      "  listen: 127.0.0.1:0",
      "apps:",
      "  - name: web",
      `    source_dirs: [${web}]`,
      '    schedule: "*/10 * * * *"',
      "  - name: db",
      `    source_dirs: [${db}]`,
      '    schedule: "0 * * * *"',
    ]);

    const c = await startClocked(config);
    try {
      await c.atEnd;
      const url = c.daemon.statusUrl!;

      const snaps = await new Repository(openFsStore(repo)).listSnapshots();
      const byHost = (h: string) => snaps.filter((s) => s.host === h);
      expect(byHost("box-web")).toHaveLength(7);
      expect(byHost("box-db")).toHaveLength(2);
      expect(snaps).toHaveLength(9);
      const ls = async (id: string) => {
        const r = await vaultik(["ls", repo, id, "-R"], { env: { VAULTIK_PRIVATE_KEY: keys.identity } });
        expect(r.code, r.stderr).toBe(0);
        return r.stdout.split("\n").filter((l) => l.endsWith(".txt")).map((l) => l.split("/").pop());
      };
      expect(await ls(byHost("box-web")[0]!.id)).toEqual(["index.txt"]);
      expect(await ls(byHost("box-db")[0]!.id)).toEqual(["rows.txt"]);

      const overall = await getJson(`${url}/status`);
      expect(overall.status).toBe(200);
      expect(Object.keys(overall.body.apps).sort()).toEqual(["db", "web"]);
      expect(overall.body.apps.web.nextRun).toBe("2026-11-28T01:10:00.000Z");
      expect(overall.body.nextRun).toBe("2026-11-28T01:10:00.000Z");

      const dbStatus = await getJson(`${url}/status?app=db`);
      expect(dbStatus.status).toBe(200);
      expect(dbStatus.body).toMatchObject({ app: "db", host: "box-db", state: "idle", consecutiveFailures: 0, nextRun: "2026-11-28T02:00:00.000Z" });
      expect(dbStatus.body.lastSuccess.snapshotId).toMatch(/_box-db_/);
      expect((await getJson(`${url}/status/web`)).body).toMatchObject({ app: "web", host: "box-web" });

      const webHistory = await getJson(`${url}/history?app=web`);
      expect(webHistory.body).toHaveLength(7);
      expect(webHistory.body.map((r: { trigger: string }) => r.trigger)).toEqual([...Array(6).fill("schedule"), "startup"]);
      expect(webHistory.body.every((r: { app: string; snapshotId: string }) => r.app === "web" && /_box-web_/.test(r.snapshotId))).toBe(true);
      expect((await getJson(`${url}/history?app=db`)).body).toHaveLength(2);
      expect((await getJson(`${url}/history`)).body).toHaveLength(9);

      const backups = await getJson(`${url}/backups/db`);
      expect(backups.status).toBe(200);
      expect(backups.body).toHaveLength(2);
      for (const b of backups.body) {
        expect(Object.keys(b).sort()).toEqual(["id", "key", "last_modified", "size", "size_mb"]);
        expect(b.id).toMatch(/_box-db_/);
        expect(b.size).toBeGreaterThan(0);
      }

      for (const path of ["/status?app=nope", "/status/nope", "/history?app=nope", "/backups/nope"]) {
        const r = await getJson(`${url}${path}`);
        expect(r.status, path).toBe(404);
        expect(r.body, path).toEqual({ error: 'unknown app "nope"', app: "nope" });
      }

      const metrics = await (await fetch(`${url}/metrics`)).text();
      expect(sampleOf(metrics, 'vaultik_backup_duration_seconds_count{app="web"}')).toBe(7);
      expect(sampleOf(metrics, 'vaultik_backup_duration_seconds_count{app="db"}')).toBe(2);
      expect(metrics).toMatch(/^# TYPE vaultik_backup_duration_seconds histogram$/m);
      expect(sampleOf(metrics, 'vaultik_backup_duration_seconds_bucket{le="+Inf",app="db"}')).toBe(2);
      expect(sampleOf(metrics, 'vaultik_backup_uploaded_bytes_total{app="db"}')).toBeGreaterThan(0);
      expect(sampleOf(metrics, 'vaultik_backup_runs_total{app="web",status="success"}')).toBe(7);
      expect(sampleOf(metrics, 'vaultik_snapshots{app="web"}')).toBe(7);
      expect(sampleOf(metrics, 'vaultik_snapshots{app="db"}')).toBe(2);
      expect(sampleOf(metrics, `vaultik_build_info{version="${VERSION}",node="${process.version}"}`)).toBe(1);
      // The families from before apps keep their series: totals over every app.
      expect(sampleOf(metrics, 'vaultik_runs_total{status="success"}')).toBe(9);
    } finally {
      c.daemon.stop();
      await c.done;
    }
  });

  it("an app with only a database is dumped every backup_interval (no watcher can see a database change)", async () => {
    const web = join(dir, "web");
    await mkdir(web);
    await writeFile(join(web, "index.txt"), "web");
    const dbFile = join(dir, "app.db");
    const db = new Database(dbFile);
    db.exec("CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('row 1')");
    db.close();
    const { config, repo } = await writeConfig([
      "hostname: box",
      "min_time_between_run: 0s",
      "backup_interval: 20m",
      "apps:",
      "  - name: web",
      `    source_dirs: [${web}]`,
      "  - name: db",
      "    databases:",
      "      - type: sqlite",
      `        file: ${dbFile}`,
      "        path: /databases/app.db",
    ]);

    const c = await startClocked(config);
    try {
      await c.atEnd;
      const snaps = await new Repository(openFsStore(repo)).listSnapshots();
      // Start-up at 00:00:30, then 00:20:30, 00:40:30 and 01:00:30, before END (01:05).
      expect(snaps.filter((s) => s.host === "box-db")).toHaveLength(4);
      // Nothing changed in web's directory: only its start-up run.
      expect(snaps.filter((s) => s.host === "box-web")).toHaveLength(1);
      const latest = snaps.filter((s) => s.host === "box-db").at(-1)!;
      const dump = await vaultik(["dump", repo, latest.id, "/databases/app.db"], { env: { VAULTIK_PRIVATE_KEY: keys.identity } });
      expect(dump.code, dump.stderr).toBe(0);
      const restored = join(dir, "restored.db");
      await writeFile(restored, dump.stdoutBytes);
      const back = new Database(restored, { readonly: true });
      expect(back.prepare("SELECT v FROM t").pluck().all()).toEqual(["row 1"]);
      back.close();
    } finally {
      c.daemon.stop();
      await c.done;
    }
  });

  it("lists what earlier runs stored from the start: /backups/<app> and vaultik_snapshots before the app's first run here", async () => {
    const web = join(dir, "web");
    await mkdir(web);
    await writeFile(join(web, "index.txt"), "web");
    const gate = join(dir, "gate");
    const { config } = await writeConfig([
      "hostname: box",
      "status:",
      "  listen: 127.0.0.1:0",
      "apps:",
      "  - name: web",
      `    source_dirs: [${web}]`,
      "    hooks:",
      `      pre_backup: "while [ ! -e ${gate} ]; do sleep 0.05; done"`,
    ]);
    // A one-shot backup stored the app's first snapshot (with the gate open).
    await writeFile(gate, "");
    const once = await vaultik(["backup", config, "--app", "web", "--cron"]);
    expect(once.code, once.stderr).toBe(0);
    await rm(gate);

    const c = await startClocked(config);
    try {
      // The daemon's start-up run now waits at the closed gate in its pre_backup hook, so no
      // run of this process has finished: what is listed comes from the start-up listing.
      await c.daemon.listed;
      const url = c.daemon.statusUrl!;
      const before = await getJson(`${url}/backups/web`);
      expect(before.body).toHaveLength(1);
      expect(before.body[0].id).toMatch(/_box-web_/);
      expect(sampleOf(await (await fetch(`${url}/metrics`)).text(), 'vaultik_snapshots{app="web"}')).toBe(1);
      expect(c.log.some((l) => /backup #1 saved/.test(l))).toBe(false);

      await writeFile(gate, "");
      await c.atEnd;
      expect((await getJson(`${url}/backups/web`)).body).toHaveLength(2);
    } finally {
      await writeFile(gate, "");
      c.daemon.stop();
      await c.done;
    }
  });

  it("a config without apps: is the app \"default\", its snapshots named by hostname:", async () => {
    const src = join(dir, "src");
    await mkdir(src);
    await writeFile(join(src, "a.txt"), "a");
    const config = join(dir, "vaultik.yml");
    await writeFile(config, [
      `age_recipient: ${keys.recipient}`, `store: ${join(dir, "repo")}`, `index_path: ${dir}/state/index.sqlite`,
      `source_dirs: [${src}]`, "hostname: nas", 'schedule: "0 * * * *"', "status:", "  listen: 127.0.0.1:0", "",
    ].join("\n"));
    const c = await startClocked(config);
    try {
      await c.atEnd;
      const url = c.daemon.statusUrl!;
      const status = await getJson(`${url}/status`);
      expect(status.body.apps).toBeUndefined();
      expect(status.body.lastSuccess.snapshotId).toMatch(/_nas_/);
      expect((await getJson(`${url}/status?app=default`)).body).toMatchObject({ app: "default", host: "nas" });
      expect((await getJson(`${url}/backups/default`)).body).toHaveLength(2);
      const metrics = await (await fetch(`${url}/metrics`)).text();
      expect(sampleOf(metrics, 'vaultik_backup_duration_seconds_count{app="default"}')).toBe(2);
      expect(sampleOf(metrics, 'vaultik_snapshots{app="default"}')).toBe(2);
    } finally {
      c.daemon.stop();
      await c.done;
    }
  });

  it("a failing app has its own failure streak and alert; the other goes on; /health names the failing app", async () => {
    const received: string[] = [];
    let firstAlert!: () => void;
    const alerted = new Promise<void>((r) => (firstAlert = r));
    const hook = createServer((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => {
        received.push(body);
        firstAlert();
        res.end("ok");
      });
    });
    await new Promise<void>((r) => hook.listen(0, "127.0.0.1", r));
    try {
      const good = join(dir, "good");
      const bad = join(dir, "bad");
      await mkdir(good);
      await mkdir(bad);
      await writeFile(join(good, "g.txt"), "g");
      await writeFile(join(bad, "b.txt"), "b");
      const config = join(dir, "vaultik.yml");
      await writeFile(config, [
        `age_recipient: ${keys.recipient}`, `store: ${join(dir, "repo")}`, `index_path: ${dir}/state/index.sqlite`,
        "hostname: box", 'schedule: "0 * * * *"', "status:", "  listen: 127.0.0.1:0",
        "alerts:", `  webhook: http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`,
        "apps:", "  - name: good", `    source_dirs: [${good}]`,
        "  - name: bad", `    source_dirs: [${bad}]`, "    hooks: {pre_backup: exit 4}", "",
      ].join("\n"));
      const c = await startClocked(config);
      try {
        await c.atEnd;
        const url = c.daemon.statusUrl!;
        const goodStatus = (await getJson(`${url}/status?app=good`)).body;
        const badStatus = (await getJson(`${url}/status?app=bad`)).body;
        expect(goodStatus).toMatchObject({ consecutiveFailures: 0, lastRun: { status: "success", app: "good" } });
        expect(goodStatus.snapshots).toBe(2);
        expect(badStatus.consecutiveFailures).toBeGreaterThan(1);
        expect(badStatus.lastSuccess).toBeUndefined();
        expect(badStatus.lastRun).toMatchObject({ status: "failure", app: "bad" });
        const health = await fetch(`${url}/health`);
        expect(health.status).toBe(503);
        expect(((await health.json()) as { reason: string }).reason).toMatch(/^app bad: /);
        const metrics = await (await fetch(`${url}/metrics`)).text();
        expect(sampleOf(metrics, 'vaultik_backup_runs_total{app="good",status="success"}')).toBe(2);
        expect(sampleOf(metrics, 'vaultik_backup_runs_total{app="bad",status="success"}')).toBe(0);
        expect(sampleOf(metrics, 'vaultik_backup_runs_total{app="bad",status="failure"}')).toBe(badStatus.consecutiveFailures);
      } finally {
        c.daemon.stop();
        await c.done;
      }
      // The run does not wait for its alert's delivery: the first POST is the event to wait for.
      await alerted;
      expect(received.some((b) => /backup failed on box-bad/.test(b))).toBe(true);
      expect(received.every((b) => !/box-good/.test(b))).toBe(true);
    } finally {
      await new Promise((r) => hook.close(r));
    }
  });

  it("a restart takes each app's history over from the state file; a reload adds an app and keeps the others' history", async () => {
    const a = join(dir, "a");
    const b = join(dir, "b");
    await mkdir(a);
    await mkdir(b);
    await writeFile(join(a, "a.txt"), "a");
    await writeFile(join(b, "b.txt"), "b");
    const config = join(dir, "vaultik.yml");
    const body = (apps: string[]) => [
      `age_recipient: ${keys.recipient}`, `store: ${join(dir, "repo")}`, `index_path: ${dir}/state/index.sqlite`,
      "hostname: box", 'schedule: "0 * * * *"', "status:", "  listen: 127.0.0.1:0", "apps:", ...apps, "",
    ].join("\n");
    const appA = ["  - name: a", `    source_dirs: [${a}]`];
    const appB = ["  - name: b", `    source_dirs: [${b}]`];
    await writeFile(config, body(appA));
    const first = await startClocked(config);
    await first.atEnd;
    first.daemon.stop();
    await first.done;

    const second = await startClocked(config);
    try {
      const url = second.daemon.statusUrl!;
      // Before its first run of this life: the two runs of the first daemon are still there.
      await second.atEnd;
      const history = (await getJson(`${url}/history?app=a`)).body as { seq: number }[];
      expect(history.length).toBe(4);
      await writeFile(config, body([...appA, ...appB]));
      const parked = second.nextPark();
      await second.daemon.reload();
      // The reload wakes the loop: b's start-up run, then it parks at END again.
      await parked;
      const status = (await getJson(`${url}/status`)).body;
      expect(Object.keys(status.apps).sort()).toEqual(["a", "b"]);
      expect((await getJson(`${url}/history?app=a`)).body).toHaveLength(4);
      expect(((await getJson(`${url}/history?app=b`)).body as { trigger: string }[]).map((r) => r.trigger)).toEqual(["startup"]);
      expect(status.apps.b).toMatchObject({ host: "box-b", consecutiveFailures: 0, snapshots: 1 });
    } finally {
      second.daemon.stop();
      await second.done;
    }
  });
});
