import type { ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { vaultik } from "./helpers/cli.js";
import { startDaemon as startDaemonProcess, type RunningDaemon } from "./helpers/daemon.js";
import { cliKeys } from "./helpers/setup.js";
import { startS3rver, type S3rverHandle } from "./helpers/s3rver.js";
import { describeTree, pseudoRandom } from "./helpers/tree.js";

// The daemon as users run it: a child process with second-scale intervals against a real S3
// server, watched through its log, its status server and the bucket.

const MiB = 1024 * 1024;
const TOKEN = "status-token-1234567890abcdef";
const S3_SECRET = "S3RVER"; // s3rver's fixed credentials; the log test below uses its own secrets

let dir: string;
let keys: { identity: string; recipient: string };
let server: S3rverHandle;
let alerts: { server: Server; url: string; received: { path: string; body: string; headers: IncomingMessage["headers"] }[] };
const children: ChildProcess[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vaultik-daemon-"));
  keys = await cliKeys();
  server = await startS3rver("vaultik-daemon");
  const received: typeof alerts.received = [];
  const http = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      received.push({ path: req.url ?? "", body, headers: req.headers });
      res.end("ok");
    });
  });
  await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
  alerts = { server: http, url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`, received };
});

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill("SIGKILL");
});

afterAll(async () => {
  await server?.close();
  await new Promise((r) => alerts?.server.close(r));
  await rm(dir, { recursive: true, force: true });
});

function startDaemon(config: string): RunningDaemon {
  return startDaemonProcess(config, children);
}

async function daemonSetup(name: string, extra: string): Promise<{ source: string; config: string; prefix: string; state: string }> {
  const base = join(dir, name);
  const source = join(base, "source");
  await mkdir(source, { recursive: true });
  const prefix = `${name}-repo`;
  const config = join(base, "vaultik.yml");
  await writeFile(
    config,
    [
      `age_recipient: ${keys.recipient}`,
      `source_dirs: [${source}]`,
      "s3:",
      `  endpoint: ${server.endpoint}`,
      `  bucket: ${server.bucket}`,
      `  prefix: ${prefix}`,
      "  access_key_id: S3RVER",
      `  secret_access_key: ${S3_SECRET}`,
      "  force_path_style: true",
      `index_path: ${base}/state/index.sqlite`,
      "chunk_size: 64KiB",
      "backup_interval: 1s",
      "min_time_between_run: 0s",
      "full_scan_interval: 1h",
      extra,
    ].join("\n"),
  );
  return { source, config, prefix, state: join(base, "state") };
}

async function snapshotIds(prefix: string): Promise<string[]> {
  const r = await vaultik(["snapshots", server.bucket, prefix, "--json"], {
    env: { VAULTIK_S3_ENDPOINT: server.endpoint, AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER" },
  });
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { id: string }[]).map((s) => s.id);
}

async function restore(prefix: string, id: string, target: string) {
  return vaultik(["restore", server.bucket, prefix, id, target], {
    env: { VAULTIK_S3_ENDPOINT: server.endpoint, AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER", VAULTIK_PRIVATE_KEY: keys.identity },
  });
}

async function get(url: string, token?: string): Promise<{ status: number; body: string; type: string | null }> {
  const res = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  return { status: res.status, body: await res.text(), type: res.headers.get("content-type") };
}

/** A strict reading of the Prometheus text format: every sample belongs to a TYPE'd family. */
function parsePrometheus(text: string): Map<string, number> {
  const types = new Map<string, string>();
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      types.set(type[1]!, type[2]!);
      continue;
    }
    if (line.startsWith("# HELP ")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (-?[0-9.e+-]+|NaN|[+-]Inf)$/.exec(line);
    if (!m) throw new Error(`not Prometheus text: ${JSON.stringify(line)}`);
    const family = m[1]!.replace(/_(bucket|sum|count)$/, "");
    if (!types.has(m[1]!) && !types.has(family)) throw new Error(`sample without TYPE: ${line}`);
    samples.set(`${m[1]}${m[2] ?? ""}`, Number(m[3]));
  }
  return samples;
}

describe("vaultik backup --daemon", () => {
  it("backs up new files within a few intervals, not without changes; serves status and metrics with token auth", async () => {
    const s = await daemonSetup("watch", `status:\n  listen: 127.0.0.1:0\n  token: ${TOKEN}\n`);
    await writeFile(join(s.source, "first.txt"), "first");
    const d = startDaemon(s.config);
    const url = (await d.waitFor(/status server listening on (http:\/\/\S+)/))[1]!;
    await d.waitFor(/backup #1 saved snapshot/);
    expect(await snapshotIds(s.prefix)).toHaveLength(1);

    // Token auth: everything but /health needs it.
    expect((await get(`${url}/health`)).status).toBe(200);
    expect((await get(`${url}/status`)).status).toBe(401);
    expect((await get(`${url}/metrics`, "wrong-token")).status).toBe(401);
    const before = parsePrometheus((await get(`${url}/metrics`, TOKEN)).body);
    expect(before.get("vaultik_up")).toBe(1);
    expect(before.get('vaultik_runs_total{status="success"}')).toBe(1);

    // Nothing changes: the daemon plans no run before the next full scan, an hour after the first
    // (read from its plan rather than by waiting several intervals and seeing nothing happen).
    const idle = JSON.parse((await get(`${url}/status`, TOKEN)).body) as { nextRun: string; dirtyPaths: number; lastRun: { started: string } };
    expect(idle.dirtyPaths).toBe(0);
    expect(Math.abs(Date.parse(idle.nextRun) - Date.parse(idle.lastRun.started) - 3600_000)).toBeLessThan(1000);
    expect(await snapshotIds(s.prefix)).toHaveLength(1);

    // A new file appears: a snapshot holding it follows within a few intervals.
    await writeFile(join(s.source, "second.txt"), "second file content");
    const second = (await d.waitFor(/backup #2 saved snapshot ([^\s:]+): 1 new/, 15_000))[1]!;
    expect(d.log()).toMatch(/backup #2 started \(watch, \d+ changed path/);
    const ids = await snapshotIds(s.prefix);
    expect(ids).toContain(second);
    const target = join(dir, "watch-restore");
    expect((await restore(s.prefix, second, target)).code).toBe(0);
    expect(await readFile(join(target, s.source.slice(1), "second.txt"), "utf8")).toBe("second file content");
    expect(await readFile(join(target, s.source.slice(1), "first.txt"), "utf8")).toBe("first");

    // Counters moved with the runs (a slow machine may split one save into two runs).
    const after = parsePrometheus((await get(`${url}/metrics`, TOKEN)).body);
    const history = JSON.parse((await get(`${url}/history`, TOKEN)).body) as { status: string; snapshotId: string }[];
    const successes = after.get('vaultik_runs_total{status="success"}')!;
    expect(successes).toBeGreaterThanOrEqual(2);
    expect(history.filter((h) => h.status === "success").length).toBeGreaterThanOrEqual(successes);
    expect(after.get("vaultik_bytes_uploaded_total")!).toBeGreaterThan(before.get("vaultik_bytes_uploaded_total")!);
    const status = JSON.parse((await get(`${url}/status`, TOKEN)).body) as { lastRun: { snapshotId: string; trigger: string } };
    expect(status.lastRun.trigger).toBe("watch");
    expect(history.map((h) => h.snapshotId)).toContain(second);

    // health-check reads the state the daemon keeps beside its index.
    const hc = await vaultik(["health-check", s.config]);
    expect(hc.code, hc.stdout + hc.stderr).toBe(0);

    d.child.kill("SIGTERM");
    expect(await d.exited).toBe(0);
  });

  it("a failing pre_backup hook: no snapshot, an alert, post_backup told of the failure, and the daemon goes on", async () => {
    const marker = join(dir, "post-hook.txt");
    const s = await daemonSetup(
      "prehook",
      `hooks:\n  pre_backup: "echo preparing; exit 7"\n  post_backup: "echo \\"$VAULTIK_STATUS\\" > ${marker}"\n  timeout: 10s\n` +
        `alerts:\n  webhook: ${alerts.url}/hook\n`,
    );
    await writeFile(join(s.source, "a.txt"), "a");
    const d = startDaemon(s.config);
    await d.waitFor(/backup #1 failed: pre_backup hook failed \(exit code 7\)/);
    await d.waitFor(/\[hook pre_backup\] preparing/);
    await d.waitFor(/backup #2 failed/, 15_000); // retried with backoff, still running
    expect(await snapshotIds(s.prefix)).toEqual([]);
    const alert = alerts.received.find((a) => a.path === "/hook");
    expect(alert).toBeDefined();
    expect(JSON.parse(alert!.body)).toMatchObject({ source: "vaultik", kind: "failure" });
    expect(await readFile(marker, "utf8")).toBe("failure\n");
    const hc = await vaultik(["health-check", s.config]);
    expect(hc.code).toBe(1);
    expect(hc.stdout).toContain("unhealthy");
    d.child.kill("SIGTERM");
    expect(await d.exited).toBe(0);
  });

  it("a command source streams a 20 MiB dump into the snapshot; it restores bit-exact", async () => {
    const dump = join(dir, "dump.bin");
    await writeFile(dump, pseudoRandom(20 * MiB, 77));
    const s = await daemonSetup("commands", `commands:\n  - name: db\n    run: "cat ${dump}"\n    path: databases/app.dump\n`);
    const d = startDaemon(s.config);
    const id = (await d.waitFor(/backup #1 saved snapshot ([^\s:]+)/))[1]!;
    d.child.kill("SIGTERM");
    await d.exited;
    const target = join(dir, "commands-restore");
    const r = await restore(s.prefix, id, target);
    expect(r.code, r.stderr).toBe(0);
    const restored = await readFile(join(target, "databases", "app.dump"));
    expect(createHash("sha256").update(restored).digest("hex")).toBe(createHash("sha256").update(await readFile(dump)).digest("hex"));
  });

  it("SIGTERM during a backup exits 0; after a restart every snapshot restores", async () => {
    // The SIGTERM comes from a command source, which starts once every file has been handed to
    // the chunkers: a known point in the middle of the run, whatever the machine's speed. The
    // flag file makes it do so only once.
    const flag = join(dir, "sigterm-flag");
    await writeFile(flag, "");
    const s = await daemonSetup(
      "sigterm",
      `commands:\n  - name: trigger\n    run: "if [ -e ${flag} ]; then rm ${flag}; kill -TERM $PPID; exec sleep 60; fi; echo dump"\n    path: trigger.txt\n`,
    );
    for (let i = 0; i < 6; i++) await writeFile(join(s.source, `big-${i}.bin`), pseudoRandom(8 * MiB, 500 + i));
    const d = startDaemon(s.config);
    expect(await d.exited).toBe(0);
    expect(d.log()).toMatch(/backup #1 interrupted/);
    expect(d.log()).toMatch(/stopped/);

    const again = startDaemon(s.config);
    await again.waitFor(/backup #1 saved snapshot/, 60_000);
    await writeFile(join(s.source, "later.txt"), "later");
    await again.waitFor(/backup #2 saved snapshot/, 20_000);
    again.child.kill("SIGTERM");
    expect(await again.exited).toBe(0);
    const want = await describeTree(s.source, { times: false });
    const ids = await snapshotIds(s.prefix);
    expect(ids.length).toBeGreaterThanOrEqual(2);
    for (const id of ids) {
      const target = join(dir, `sigterm-${id}`);
      const r = await restore(s.prefix, id, target);
      expect(r.code, r.stderr).toBe(0);
      const got = await describeTree(join(target, s.source.slice(1)), { times: false });
      // Every snapshot is a consistent state of the tree: its files are the tree's files.
      for (const [path, entry] of got) expect(entry, path).toEqual(want.get(path));
    }
  });

  it("SIGHUP reloads the config; a bad new config is reported and the old one keeps running", async () => {
    const s = await daemonSetup("reload", "");
    await writeFile(join(s.source, "x.txt"), "x");
    const d = startDaemon(s.config);
    await d.waitFor(/backup #1 saved snapshot/);
    const good = await readFile(s.config, "utf8");
    await writeFile(s.config, `${good}\nchunk_sise: 1MiB\n`);
    d.child.kill("SIGHUP");
    await d.waitFor(/reload failed, keeping the running config: config: chunk_sise: unknown key/);
    await writeFile(join(s.source, "y.txt"), "y");
    await d.waitFor(/backup #2 saved snapshot/, 15_000);
    await writeFile(s.config, good);
    d.child.kill("SIGHUP");
    await d.waitFor(/config reloaded/);
    d.child.kill("SIGTERM");
    expect(await d.exited).toBe(0);
  });

  it("logs never contain secrets from the config", async () => {
    const secret = "SUPERSECRETaccesskey987654321";
    const token = "tok-abcdefghijklmnop1234";
    const base = join(dir, "secrets");
    await mkdir(join(base, "source"), { recursive: true });
    const config = join(base, "vaultik.yml");
    await writeFile(
      config,
      `age_recipient: ${keys.recipient}\nsource_dirs: [${base}/source]\nindex_path: ${base}/state/index.sqlite\n` +
        `s3:\n  endpoint: http://127.0.0.1:9\n  bucket: nowhere\n  access_key_id: AKIAEXAMPLE\n  secret_access_key: ${secret}\n  force_path_style: true\n` +
        `status:\n  listen: 127.0.0.1:0\n  token: ${token}\n` +
        `alerts:\n  webhook: http://user:${secret}@127.0.0.1:9/hook?token=${token}\n` +
        "backup_interval: 1s\nmin_time_between_run: 0s\n",
    );
    const d = startDaemon(config);
    await d.waitFor(/backup #1 failed/);
    await d.waitFor(/(alert|webhook)/i, 15_000);
    d.child.kill("SIGTERM");
    await d.exited;
    expect(d.log()).toContain("127.0.0.1:9");
    expect(d.log()).not.toContain(secret);
    expect(d.log()).not.toContain(token);
  });
});

describe("version and health-check", () => {
  it("version --json names the versions", async () => {
    const r = await vaultik(["version", "--json"]);
    expect(r.code).toBe(0);
    const v = JSON.parse(r.stdout) as { vaultik: string; node: string; snapshotFormat: number };
    expect(v.vaultik).toMatch(/^\d+\.\d+\.\d+/);
    expect(v.node).toBe(process.versions.node);
    expect(v.snapshotFormat).toBe(2);
  });

  it("health-check without any daemon state is unhealthy (exit 1)", async () => {
    const s = await daemonSetup("nohealth", "");
    const r = await vaultik(["health-check", s.config]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/unhealthy: no daemon state/);
  });
});
