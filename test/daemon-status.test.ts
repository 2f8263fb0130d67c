import { execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { storeFromConfig } from "../src/cli/context.js";
import { Daemon } from "../src/daemon/daemon.js";
import { DaemonMetrics } from "../src/daemon/metrics.js";
import type { DaemonState, RunRecord } from "../src/daemon/state.js";
import { startStatusServer, type StatusServer, type StatusServerOptions } from "../src/daemon/status-server.js";
import { cliKeys, localRepo } from "./helpers/setup.js";

// Every test talks to a real server on a real socket. The state is a plain object the test
// swaps between requests, which is exactly how the daemon will drive it.

const NOW = Date.parse("2025-06-01T12:00:00Z");
const HOUR = 60 * 60 * 1000;
const TOKEN = "status-token-0123456789";

let seq = 0;
function run(over: Partial<RunRecord> = {}): RunRecord {
  return {
    seq: ++seq,
    trigger: "schedule",
    status: "success",
    started: "2025-06-01T11:00:00.000Z",
    finished: "2025-06-01T11:00:30.000Z",
    durationMs: 30_000,
    snapshotId: "snap-1",
    filesNew: 0,
    filesChanged: 0,
    filesUnchanged: 0,
    bytesRead: 0,
    bytesUploaded: 0,
    blobsUploaded: 0,
    errors: 0,
    ...over,
  };
}

function state(over: Partial<DaemonState> = {}): DaemonState {
  return {
    state: "idle",
    pid: 4242,
    version: "0.1.0",
    startedAt: "2025-06-01T10:00:00.000Z",
    dirtyPaths: 0,
    consecutiveFailures: 0,
    history: [],
    ...over,
  };
}

/** A healthy daemon: one run, which succeeded an hour ago. */
function healthyState(): DaemonState {
  const r = run();
  return state({ lastRun: r, lastSuccess: r, history: [r], nextRun: "2025-06-01T13:00:00.000Z" });
}

// --- A strict reader for the Prometheus text exposition format (version 0.0.4) -----------------

interface Exposition {
  types: Map<string, string>;
  /** Keyed by `name{a="x",b="y"}` with labels sorted, or by bare `name`. */
  samples: Map<string, number>;
}

const METRIC_NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const LABEL = '([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\\\\n]|\\\\[\\\\"n])*)"';
const SAMPLE = new RegExp(`^(${METRIC_NAME})(?:\\{((?:${LABEL})(?:,${LABEL})*,?)?\\})? (\\S+)(?: (-?\\d+))?$`);
const LABEL_G = new RegExp(LABEL, "g");
const HELP = new RegExp(`^# HELP (${METRIC_NAME}) (.*)$`);
const TYPE = new RegExp(`^# TYPE (${METRIC_NAME}) (counter|gauge|histogram|summary|untyped)$`);
// Go's ParseFloat, which Prometheus uses, accepts NaN and Inf in any case.
const VALUE = /^(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?inf|nan)$/i;

function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const samples = new Map<string, number>();
  expect(text.endsWith("\n")).toBe(true);
  for (const line of text.split("\n")) {
    if (line === "") continue;
    let m: RegExpExecArray | null;
    if ((m = HELP.exec(line))) {
      const name = m[1] as string;
      if (helps.has(name)) throw new Error(`second HELP for ${name}`);
      helps.add(name);
    } else if ((m = TYPE.exec(line))) {
      const name = m[1] as string;
      if (types.has(name)) throw new Error(`second TYPE for ${name}`);
      types.set(name, m[2] as string);
    } else if (line.startsWith("#")) {
      throw new Error(`unexpected comment line: ${line}`);
    } else if ((m = SAMPLE.exec(line))) {
      const name = m[1] as string;
      const rawValue = m[m.length - 2] as string;
      if (!VALUE.test(rawValue)) throw new Error(`bad value in: ${line}`);
      const family = familyOf(name, types);
      if (family === undefined) throw new Error(`sample before its TYPE: ${line}`);
      const labels = [...(m[2] ?? "").matchAll(LABEL_G)].map((l) => `${l[1]}="${l[2]}"`).sort();
      const key = labels.length ? `${name}{${labels.join(",")}}` : name;
      if (samples.has(key)) throw new Error(`duplicate sample ${key}`);
      samples.set(key, Number(/nan/i.test(rawValue) ? NaN : rawValue.replace(/inf/i, "Infinity")));
    } else {
      throw new Error(`unparsable line: ${JSON.stringify(line)}`);
    }
  }
  return { types, samples };
}

/** The family a sample belongs to: itself, or a histogram/summary it is a part of. */
function familyOf(name: string, types: Map<string, string>): string | undefined {
  if (types.has(name)) return name;
  const base = name.replace(/_(bucket|sum|count)$/, "");
  const t = types.get(base);
  return t === "histogram" || t === "summary" ? base : undefined;
}

function sample(e: Exposition, key: string): number {
  const v = e.samples.get(key);
  if (v === undefined) throw new Error(`no sample ${key}`);
  return v;
}

describe("the exposition reader used below", () => {
  // A lenient reader would make the /metrics assertions prove nothing, so check it refuses junk.
  it.each([
    ["sample without TYPE", "a_total 1\n"],
    ["TYPE after its sample", "a 1\n# TYPE a gauge\n"],
    ["unknown type", "# TYPE a thing\na 1\n"],
    ["bad value", "# TYPE a gauge\na one\n"],
    ["unquoted label", "# TYPE a gauge\na{x=1} 1\n"],
    ["missing space", "# TYPE a gauge\na{x=\"1\"}1\n"],
    ["duplicate sample", "# TYPE a gauge\na 1\na 2\n"],
    ["stray comment", "# hello\n"],
    ["bucket of a gauge", "# TYPE a gauge\na_bucket 1\n"],
  ])("rejects %s", (_name, text) => {
    expect(() => parseExposition(text)).toThrow();
  });

  it("accepts histogram parts, labels with escapes, timestamps and NaN", () => {
    const e = parseExposition('# HELP h x\n# TYPE h histogram\nh_bucket{le="+Inf"} 3\nh_sum 1.5e2\nh_count 3\n# TYPE g gauge\ng{p="a\\"b"} Nan 1700000000\n');
    expect(sample(e, 'h_bucket{le="+Inf"}')).toBe(3);
    expect(sample(e, "h_sum")).toBe(150);
    expect(Number.isNaN(sample(e, 'g{p="a\\"b"}'))).toBe(true);
  });
});

// -----------------------------------------------------------------------------------------------

interface Client {
  get(path: string, init?: RequestInit): Promise<Response>;
}

/** A status server on a free local port; tests name only what they are about. */
function serve(over: Partial<StatusServerOptions> = {}): Promise<StatusServer> {
  return startStatusServer({ host: "127.0.0.1", port: 0, getState: state, metrics: new DaemonMetrics(), staleAfterMs: HOUR, ...over });
}

function client(server: StatusServer): Client {
  return { get: (path, init) => fetch(`${server.url}${path}`, init) };
}

describe("status server without a token", () => {
  let current = healthyState();
  let now = NOW;
  let dirty = 0;
  const metrics = new DaemonMetrics({ dirtyPaths: () => dirty });
  const lines: string[] = [];
  let server: StatusServer;
  let c: Client;

  beforeAll(async () => {
    server = await serve({ getState: () => current, metrics, staleAfterMs: 24 * HOUR, now: () => now, log: (l) => lines.push(l) });
    c = client(server);
  });
  afterAll(() => server.close());
  afterEach(() => {
    current = healthyState();
    now = NOW;
  });

  it("listens on the chosen port and reports its URL", () => {
    expect(server.port).toBeGreaterThan(0);
    expect(server.url).toBe(`http://127.0.0.1:${server.port}`);
  });

  it("/health is 200 after a recent success", async () => {
    const res = await c.get("/health");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(await res.json()).toEqual({ status: "ok", reason: "last success snap-1 at 2025-06-01T11:00:30.000Z" });
  });

  it("/health is 503 before any backup succeeded", async () => {
    const failed = run({ status: "failure", error: "store unreachable", snapshotId: undefined });
    for (const s of [state(), state({ state: "running", current: { run: run({ status: "running" }), progress: { filesDone: 1, bytesDone: 2, currentPath: "/a" } } }), state({ lastRun: failed, history: [failed] })]) {
      current = s;
      const res = await c.get("/health");
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({ status: "unhealthy", reason: "no backup has succeeded yet" });
    }
  });

  it("/health is 503 when the last run failed, even though an earlier one succeeded", async () => {
    const ok = run();
    const failed = run({ status: "failure", error: "connect ECONNREFUSED", started: "2025-06-01T11:30:00.000Z", finished: "2025-06-01T11:30:05.000Z" });
    current = state({ lastRun: failed, lastSuccess: ok, history: [failed, ok], consecutiveFailures: 1 });
    const res = await c.get("/health");
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ status: "unhealthy", reason: "last run failed: connect ECONNREFUSED" });
  });

  it("/health stays 200 when the last run was interrupted by a stop, and judges the run before it", async () => {
    const ok = run();
    const stopped = run({ status: "interrupted", snapshotId: undefined, started: "2025-06-01T11:30:00.000Z", finished: "2025-06-01T11:30:05.000Z" });
    current = state({ lastRun: stopped, lastSuccess: ok, history: [stopped, ok] });
    const res = await c.get("/health");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok", reason: "last success snap-1 at 2025-06-01T11:00:30.000Z" });
    // Interrupted after a failure: still the failure that counts.
    const failed = run({ status: "failure", error: "disk full", snapshotId: undefined });
    current = state({ lastRun: stopped, lastSuccess: ok, history: [stopped, failed, ok], consecutiveFailures: 1 });
    expect((await c.get("/health")).status).toBe(503);
  });

  it("/health is 503 when the last success is older than staleAfterMs, and 200 just inside it", async () => {
    const finished = Date.parse("2025-06-01T11:00:30.000Z");
    now = finished + 24 * HOUR;
    expect((await c.get("/health")).status).toBe(200);
    now = finished + 25 * HOUR;
    const res = await c.get("/health");
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ status: "unhealthy", reason: "last success was 1500 minutes ago" });
  });

  it("/status has the documented shape and no history", async () => {
    const progress = { filesDone: 10, bytesDone: 4096, currentPath: "/home/a/file.txt" };
    const running = run({ status: "running", trigger: "watch", finished: undefined, durationMs: undefined, snapshotId: undefined });
    const base = healthyState();
    current = { ...base, state: "running", current: { run: running, progress }, dirtyPaths: 3 };
    const res = await c.get("/status");
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const body = (await res.json()) as Record<string, unknown>;
    expect(Object.keys(body).sort()).toEqual(
      ["consecutiveFailures", "current", "dirtyPaths", "lastRun", "lastSuccess", "nextRun", "pid", "startedAt", "state", "version"].sort(),
    );
    expect(body).toEqual({
      state: "running",
      pid: 4242,
      version: "0.1.0",
      startedAt: "2025-06-01T10:00:00.000Z",
      current: { run: JSON.parse(JSON.stringify(running)) as unknown, progress },
      lastRun: base.lastRun,
      lastSuccess: base.lastSuccess,
      nextRun: "2025-06-01T13:00:00.000Z",
      dirtyPaths: 3,
      consecutiveFailures: 0,
    });
  });

  it("/history is the history array, newest first as given", async () => {
    const older = run({ started: "2025-06-01T09:00:00.000Z", finished: "2025-06-01T09:00:10.000Z" });
    const newer = run({ status: "failure", error: "boom", started: "2025-06-01T10:00:00.000Z", finished: "2025-06-01T10:00:01.000Z" });
    current = state({ lastRun: newer, lastSuccess: older, history: [newer, older] });
    const res = await c.get("/history");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual([newer, older]);
    current = state();
    expect(await (await c.get("/history")).json()).toEqual([]);
  });

  it("ignores the query string when routing", async () => {
    expect((await c.get("/health?verbose=1")).status).toBe(200);
  });

  it("answers 404 for unknown paths and 405 for other methods", async () => {
    for (const path of ["/", "/nope", "/health/", "/status/x", "/HEALTH"]) {
      const res = await c.get(path);
      expect(res.status, path).toBe(404);
      expect(await res.json()).toEqual({ error: "not found" });
    }
    for (const method of ["POST", "PUT", "DELETE", "HEAD"]) {
      const res = await c.get("/status", { method });
      expect(res.status, method).toBe(405);
      expect(res.headers.get("allow")).toBe("GET");
    }
    const post = await c.get("/metrics", { method: "POST", body: "x" });
    expect(post.status).toBe(405);
    expect(await post.json()).toEqual({ error: "method not allowed" });
  });

  it("/metrics is valid Prometheus text with the vaultik families and process metrics", async () => {
    const res = await c.get("/metrics");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe(metrics.contentType);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const e = parseExposition(await res.text());
    const expected: Record<string, string> = {
      vaultik_up: "gauge",
      vaultik_running: "gauge",
      vaultik_dirty_paths: "gauge",
      vaultik_last_success_timestamp_seconds: "gauge",
      vaultik_last_run_status: "gauge",
      vaultik_last_run_duration_seconds: "gauge",
      vaultik_runs_total: "counter",
      vaultik_bytes_read_total: "counter",
      vaultik_bytes_uploaded_total: "counter",
      vaultik_files_total: "counter",
      vaultik_blobs_uploaded_total: "counter",
      vaultik_errors_total: "counter",
    };
    for (const [name, type] of Object.entries(expected)) expect(e.types.get(name), name).toBe(type);
    expect(e.types.get("process_cpu_seconds_total")).toBe("counter");
    expect(e.types.has("nodejs_heap_size_used_bytes")).toBe(true);
    expect(sample(e, "vaultik_up")).toBe(1);
  });

  it("/metrics follows runs: counters move, gauges hold the last run", async () => {
    const scrape = async (): Promise<Exposition> => parseExposition(await (await c.get("/metrics")).text());
    const before = await scrape();
    expect(sample(before, 'vaultik_runs_total{status="success"}')).toBe(0);
    expect(sample(before, 'vaultik_runs_total{status="failure"}')).toBe(0);
    expect(sample(before, 'vaultik_files_total{kind="new"}')).toBe(0);
    expect(sample(before, "vaultik_last_success_timestamp_seconds")).toBe(0);
    expect(sample(before, "vaultik_running")).toBe(0);

    const first = run({ filesNew: 5, filesUnchanged: 2, bytesRead: 1000, bytesUploaded: 600, blobsUploaded: 2, errors: 1 });
    metrics.runStarted({ ...first, status: "running" });
    dirty = 7;
    const during = await scrape();
    expect(sample(during, "vaultik_running")).toBe(1);
    expect(sample(during, "vaultik_dirty_paths")).toBe(7);

    metrics.runFinished(first);
    dirty = 0;
    const afterOne = await scrape();
    expect(sample(afterOne, 'vaultik_runs_total{status="success"}')).toBe(1);
    expect(sample(afterOne, "vaultik_running")).toBe(0);
    expect(sample(afterOne, "vaultik_dirty_paths")).toBe(0);
    expect(sample(afterOne, "vaultik_last_run_status")).toBe(1);
    expect(sample(afterOne, "vaultik_last_run_duration_seconds")).toBe(30);
    expect(sample(afterOne, "vaultik_last_success_timestamp_seconds")).toBe(Date.parse("2025-06-01T11:00:30.000Z") / 1000);

    // A failed run: its work still counts, but the last success stays where it was.
    const second = run({
      status: "failure",
      error: "upload failed",
      started: "2025-06-01T11:30:00.000Z",
      finished: "2025-06-01T11:30:04.500Z",
      durationMs: undefined,
      filesNew: 1,
      filesChanged: 3,
      filesUnchanged: 6,
      bytesRead: 234,
      bytesUploaded: 56,
      blobsUploaded: 1,
      errors: 0,
    });
    metrics.runStarted({ ...second, status: "running" });
    metrics.runFinished(second);
    const afterTwo = await scrape();
    expect(sample(afterTwo, 'vaultik_runs_total{status="success"}')).toBe(1);
    expect(sample(afterTwo, 'vaultik_runs_total{status="failure"}')).toBe(1);
    expect(sample(afterTwo, "vaultik_bytes_read_total")).toBe(1234);
    expect(sample(afterTwo, "vaultik_bytes_uploaded_total")).toBe(656);
    expect(sample(afterTwo, "vaultik_blobs_uploaded_total")).toBe(3);
    expect(sample(afterTwo, "vaultik_errors_total")).toBe(1);
    expect(sample(afterTwo, 'vaultik_files_total{kind="new"}')).toBe(6);
    expect(sample(afterTwo, 'vaultik_files_total{kind="changed"}')).toBe(3);
    expect(sample(afterTwo, 'vaultik_files_total{kind="unchanged"}')).toBe(8);
    expect(sample(afterTwo, "vaultik_last_run_status")).toBe(0);
    expect(sample(afterTwo, "vaultik_last_run_duration_seconds")).toBe(4.5);
    expect(sample(afterTwo, "vaultik_last_success_timestamp_seconds")).toBe(Date.parse("2025-06-01T11:00:30.000Z") / 1000);

    // An interrupted run (the daemon was stopped) is counted as such and leaves the last outcome.
    expect(sample(afterTwo, 'vaultik_runs_total{status="interrupted"}')).toBe(0);
    metrics.runFinished(run({ started: "2025-06-01T11:35:00.000Z", finished: "2025-06-01T11:35:10.000Z" }));
    const interrupted = run({ status: "interrupted", snapshotId: undefined, started: "2025-06-01T11:40:00.000Z", finished: "2025-06-01T11:40:01.000Z", durationMs: 1000 });
    metrics.runStarted({ ...interrupted, status: "running" });
    metrics.runFinished(interrupted);
    const afterStop = await scrape();
    const keys = ['vaultik_runs_total{status="interrupted"}', 'vaultik_runs_total{status="success"}', 'vaultik_runs_total{status="failure"}', "vaultik_last_run_status", "vaultik_running"];
    expect(keys.map((k) => sample(afterStop, k))).toEqual([1, 2, 1, 1, 0]);
  });

  it("logs nothing for ordinary requests, including 404s and 405s", () => {
    expect(lines).toEqual([]);
  });
});

describe("status server with a token", () => {
  const lines: string[] = [];
  let server: StatusServer;
  let c: Client;

  beforeAll(async () => {
    server = await serve({ token: TOKEN, getState: healthyState, staleAfterMs: 24 * HOUR, now: () => NOW, log: (l) => lines.push(l) });
    c = client(server);
  });
  afterAll(() => server.close());

  const bearer = (t: string): RequestInit => ({ headers: { authorization: `Bearer ${t}` } });

  it.each(["/status", "/history", "/metrics"])("%s needs the right bearer token", async (path) => {
    for (const init of [undefined, bearer("wrong"), bearer(`${TOKEN}x`), bearer(TOKEN.slice(0, -1)), { headers: { authorization: `Basic ${TOKEN}` } }, { headers: { authorization: TOKEN } }]) {
      const res = await c.get(path, init);
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toBe("Bearer");
      expect(res.headers.get("cache-control")).toBe("no-store");
      const text = await res.text();
      expect(JSON.parse(text)).toEqual({ error: "unauthorized" });
      expect(text).not.toContain(TOKEN);
    }
    const ok = await c.get(path, bearer(TOKEN));
    expect(ok.status).toBe(200);
    // The scheme name is case-insensitive (RFC 7235).
    expect((await c.get(path, { headers: { authorization: `bearer ${TOKEN}` } })).status).toBe(200);
  });

  it.each(["/status", "/history", "/metrics"])("%s takes the token as X-API-Key too (issue 19)", async (path) => {
    expect((await c.get(path, { headers: { "x-api-key": TOKEN } })).status).toBe(200);
    for (const key of ["wrong", `${TOKEN}x`, TOKEN.slice(0, -1), ""]) {
      const res = await c.get(path, { headers: { "x-api-key": key } });
      expect(res.status, key).toBe(401);
      expect(await res.text()).not.toContain(TOKEN);
    }
    // Either header carrying the token is enough, whatever the other says.
    expect((await c.get(path, { headers: { "x-api-key": TOKEN, authorization: "Bearer wrong" } })).status).toBe(200);
  });

  it("/health needs no token, so probes work", async () => {
    const res = await c.get("/health");
    expect(res.status).toBe(200);
    expect(((await res.json()) as { status: string }).status).toBe("ok");
  });

  it("still answers 404 for unknown paths", async () => {
    expect((await c.get("/secret-stuff")).status).toBe(404);
  });

  it("logged nothing, and certainly not the token", () => {
    expect(lines).toEqual([]);
  });

  it("refuses an empty token rather than guessing what it means", async () => {
    await expect(serve({ token: "" })).rejects.toThrow(/token/);
  });
});

describe("status server failures and shutdown", () => {
  it("answers 500 and logs one line when the state cannot be read", async () => {
    const lines: string[] = [];
    const server = await serve({
      token: TOKEN,
      getState: () => {
        throw new Error("state file corrupt");
      },
      log: (l) => lines.push(l),
    });
    try {
      const res = await fetch(`${server.url}/status`, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(res.status).toBe(500);
      expect(await res.json()).toEqual({ error: "internal error" });
      expect(lines).toEqual(["status server: GET /status failed: state file corrupt"]);
    } finally {
      await server.close();
    }
  });

  it("rejects when the port is taken", async () => {
    const first = await serve();
    try {
      await expect(serve({ port: first.port })).rejects.toThrow(/EADDRINUSE/);
    } finally {
      await first.close();
    }
  });

  it("close() returns promptly despite a keep-alive connection, and the port is free afterwards", async () => {
    const { request, Agent } = await import("node:http");
    const server = await serve({ getState: healthyState, staleAfterMs: 24 * HOUR, now: () => NOW });
    const agent = new Agent({ keepAlive: true });
    try {
      const status = await new Promise<number>((resolve, reject) => {
        request(`${server.url}/health`, { agent }, (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
        })
          .on("error", reject)
          .end();
      });
      expect(status).toBe(200);
      const t0 = Date.now();
      await Promise.all([server.close(), server.close()]);
      expect(Date.now() - t0).toBeLessThan(1000);
      await expect(fetch(`${server.url}/health`)).rejects.toThrow();
      // The same port can be bound again at once.
      const again = await serve({ port: server.port });
      await again.close();
    } finally {
      agent.destroy();
    }
  });
});

describe("a real daemon's status and metrics", () => {
  let dir: string | undefined;
  let daemon: Daemon | undefined;
  let loop: Promise<void> | undefined;

  afterEach(async () => {
    daemon?.stop();
    await loop;
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = daemon = loop = undefined;
  });

  it("vaultik_dirty_paths in /metrics agrees with /status once a run has taken the dirty paths", async () => {
    dir = await mkdtemp(join(tmpdir(), "vaultik-status-"));
    // pre_backup announces the run and waits on a FIFO, so the test looks at the daemon at a
    // known point: the run has started and taken the dirty set, and has not finished.
    const fifo = join(dir, "go");
    execFileSync("mkfifo", [fifo]);
    const r = await localRepo(
      dir,
      await cliKeys(),
      `hooks:\n  pre_backup: 'echo "waiting $VAULTIK_RUN"; read go < ${fifo}'\n` +
        "status:\n  listen: 127.0.0.1:0\nbackup_interval: 1s\nmin_time_between_run: 0s\nfull_scan_interval: 1h\n",
    );
    await writeFile(join(r.source, "a.txt"), "a");
    let log = "";
    const waiters = new Set<() => void>();
    const logged = (pattern: RegExp): Promise<void> =>
      new Promise((resolve) => {
        const check = (): void => {
          if (pattern.test(log)) {
            waiters.delete(check);
            resolve();
          }
        };
        waiters.add(check);
        check();
      });
    daemon = new Daemon({
      configPath: r.config,
      openStore: storeFromConfig,
      log: (line) => {
        log += `${line}\n`;
        for (const w of [...waiters]) w();
      },
    });
    await daemon.start();
    loop = daemon.run();
    const url = daemon.statusUrl!;
    const scrape = async (): Promise<{ status: number; metric: number }> => {
      const status = (await (await fetch(`${url}/status`)).json()) as { dirtyPaths: number };
      const metric = sample(parseExposition(await (await fetch(`${url}/metrics`)).text()), "vaultik_dirty_paths");
      return { status: status.dirtyPaths, metric };
    };

    await logged(/\[hook pre_backup\] waiting 1/);
    await writeFile(fifo, "go\n");
    await logged(/backup #1 saved snapshot/);

    // A change: the watcher marks it dirty and the next run takes it.
    await writeFile(join(r.source, "b.txt"), "b");
    await logged(/backup #2 started \(watch, [1-9]\d* changed path/);
    await logged(/\[hook pre_backup\] waiting 2/);
    expect(await scrape()).toEqual({ status: 0, metric: 0 });
    await writeFile(fifo, "go\n");
    await logged(/backup #2 saved snapshot/);
    expect(await scrape()).toEqual({ status: 0, metric: 0 });
  });
});
