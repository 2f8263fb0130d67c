import type { ChildProcess } from "node:child_process";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { alertAfterRun, type FailureStreak } from "../src/daemon/alert-policy.js";
import { Alerter, type Alert } from "../src/daemon/alerts.js";
import type { RunRecord, RunStatus } from "../src/daemon/state.js";
import { startDaemon, type RunningDaemon } from "./helpers/daemon.js";
import { cliKeys, localRepo } from "./helpers/setup.js";
import { decodeBody, header, startSmtp } from "./helpers/smtp.js";

// A real local HTTP server stands in for the webhook receiver and for ntfy. Its path decides how
// it answers: /fail → 500, /hang → never, anything else → 200. Every request is recorded.

interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

let server: Server;
let base: string;
let port: number;
const received: Received[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      received.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
      const path = (req.url ?? "").split("?")[0];
      if (path === "/hang") return; // never answers; the client's timeout must end it
      res.writeHead(path === "/fail" ? 500 : 200, { "content-type": "text/plain" });
      res.end(path === "/fail" ? "internal error" : "ok");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  const closed = new Promise((resolve) => server.close(resolve));
  server.closeAllConnections();
  await closed;
});

beforeEach(() => {
  received.length = 0;
});

const RUN: RunRecord = {
  seq: 3,
  trigger: "schedule",
  status: "failure",
  started: "2025-06-01T11:00:00.000Z",
  finished: "2025-06-01T11:00:05.000Z",
  durationMs: 5000,
  error: "store unreachable",
  filesNew: 0,
  filesChanged: 0,
  filesUnchanged: 0,
  bytesRead: 0,
  bytesUploaded: 0,
  blobsUploaded: 0,
  errors: 0,
};

function alert(over: Partial<Alert> = {}): Alert {
  return { kind: "failure", message: "backup failed: store unreachable", host: "nas", run: RUN, time: "2025-06-01T11:00:05.000Z", ...over };
}

/** A port on which nothing listens: bind one, then let it go. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const p = (s.address() as AddressInfo).port;
  await new Promise((resolve) => s.close(resolve));
  return p;
}

describe("Alerter", () => {
  it("POSTs the alert as JSON to the webhook", async () => {
    const lines: string[] = [];
    await new Alerter({ webhook: `${base}/hook`, log: (l) => lines.push(l) }).send(alert());
    expect(lines).toEqual([]);
    expect(received).toHaveLength(1);
    const r = received[0]!;
    expect(r.method).toBe("POST");
    expect(r.url).toBe("/hook");
    expect(r.headers["content-type"]).toBe("application/json");
    // Schema 0's fields as they were, and issue 19's additions (docs/ALERTS.md).
    expect(JSON.parse(r.body)).toEqual({
      source: "vaultik",
      kind: "failure",
      message: "backup failed: store unreachable",
      host: "nas",
      time: "2025-06-01T11:00:05.000Z",
      run: RUN,
      schema: 1,
      severity: "error",
      title: "vaultik: backup failed on nas",
    });
  });

  it("POSTs the message as text to ntfy with title, priority and tags", async () => {
    const lines: string[] = [];
    const a = new Alerter({ ntfy: `${base}/vaultik-topic`, log: (l) => lines.push(l) });
    await a.send(alert({ kind: "stale", message: "no backup for 26 hours", run: undefined }));
    await a.send(alert({ kind: "recovered", message: "backup succeeded again: snap-9" }));
    expect(lines).toEqual([]);
    expect(received.map((r) => [r.method, r.url, r.body])).toEqual([
      ["POST", "/vaultik-topic", "no backup for 26 hours"],
      ["POST", "/vaultik-topic", "backup succeeded again: snap-9"],
    ]);
    const [stale, recovered] = received as [Received, Received];
    expect(stale.headers["content-type"]).toMatch(/^text\/plain/);
    expect([stale.headers.title, stale.headers.priority, stale.headers.tags]).toEqual(["vaultik stale on nas", "high", "warning"]);
    expect([recovered.headers.title, recovered.headers.priority, recovered.headers.tags]).toEqual(["vaultik recovered on nas", "default", "white_check_mark"]);
  });

  it("sends to both destinations, and one failing does not stop the other", async () => {
    const lines: string[] = [];
    await new Alerter({ webhook: `${base}/fail`, ntfy: `${base}/topic`, log: (l) => lines.push(l) }).send(alert());
    expect(received.map((r) => r.url).sort()).toEqual(["/fail", "/topic"]);
    expect(lines).toEqual([`alert (failure) to webhook ${base}/fail failed: HTTP 500 Internal Server Error`]);
  });

  it("logs a 500 without the credentials or query of the URL, and still delivered basic auth", async () => {
    const lines: string[] = [];
    const url = `http://user:s3cretpw@127.0.0.1:${port}/fail?token=abcdef123`;
    await expect(new Alerter({ webhook: url, ntfy: url, log: (l) => lines.push(l) }).send(alert())).resolves.toBeUndefined();
    expect(lines).toHaveLength(2);
    expect(lines.sort()).toEqual([
      `alert (failure) to ntfy http://127.0.0.1:${port}/fail failed: HTTP 500 Internal Server Error`,
      `alert (failure) to webhook http://127.0.0.1:${port}/fail failed: HTTP 500 Internal Server Error`,
    ]);
    for (const line of lines) {
      for (const leak of ["s3cretpw", "abcdef123", "user", "token", "?"]) expect(line).not.toContain(leak);
    }
    // The userinfo became an Authorization header (fetch refuses it inside the URL), and the
    // query went out as written: the receiver needs both.
    expect(received).toHaveLength(2);
    for (const r of received) {
      expect(r.url).toBe("/fail?token=abcdef123");
      expect(r.headers.authorization).toBe(`Basic ${Buffer.from("user:s3cretpw").toString("base64")}`);
    }
  });

  it("logs a refused connection and resolves", async () => {
    const lines: string[] = [];
    const p = await closedPort();
    const url = `http://user:s3cretpw@127.0.0.1:${p}/hook?token=abcdef123`;
    await expect(new Alerter({ webhook: url, log: (l) => lines.push(l) }).send(alert())).resolves.toBeUndefined();
    expect(lines).toHaveLength(1);
    const line = lines[0]!;
    expect(line).toContain(`webhook http://127.0.0.1:${p}/hook failed:`);
    expect(line).toMatch(/ECONNREFUSED/);
    for (const leak of ["s3cretpw", "abcdef123", "user:", "token="]) expect(line).not.toContain(leak);
  });

  it("gives up on a server that never answers after timeoutMs", async () => {
    const lines: string[] = [];
    const t0 = Date.now();
    await new Alerter({ ntfy: `${base}/hang?auth=tk_secret123`, log: (l) => lines.push(l), timeoutMs: 200 }).send(alert());
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(150);
    expect(elapsed).toBeLessThan(3000);
    expect(received.map((r) => r.url)).toEqual(["/hang?auth=tk_secret123"]);
    expect(lines).toEqual([`alert (failure) to ntfy ${base}/hang failed: timed out after 200 ms`]);
  });

  it("logs an invalid URL without echoing it", async () => {
    const lines: string[] = [];
    await new Alerter({ webhook: "tk_notaurl_secret", log: (l) => lines.push(l) }).send(alert());
    expect(lines).toEqual(["alert (failure) to webhook <invalid URL> failed: invalid URL"]);
  });

  it("uses an injected fetch, and a fetch that throws is logged, not rethrown", async () => {
    const lines: string[] = [];
    const calls: string[] = [];
    const fake: typeof fetch = (input) => {
      calls.push(String(input));
      return Promise.reject(new Error("boom"));
    };
    await new Alerter({ webhook: "https://hooks.example.com/x", log: (l) => lines.push(l), fetch: fake }).send(alert());
    expect(calls).toEqual(["https://hooks.example.com/x"]);
    expect(lines).toEqual(["alert (failure) to webhook https://hooks.example.com/x failed: boom"]);
  });

  it("does nothing when no destination is configured", async () => {
    const lines: string[] = [];
    await new Alerter({ log: (l) => lines.push(l) }).send(alert());
    expect(lines).toEqual([]);
    expect(received).toEqual([]);
  });
});

describe("alertAfterRun: when a finished run deserves an alert", () => {
  const T0 = Date.parse("2025-06-01T00:00:00Z");
  const SECOND = 1000;
  const HOUR = 3600 * SECOND;
  const DAY = 24 * HOUR;

  /** Feeds runs to the policy on an injected clock; returns the alerts it asked for, with their time offsets. */
  function simulate(runs: [offsetMs: number, status: RunStatus][], repeatAfterMs = DAY, start?: FailureStreak): [number, string][] {
    let streak = start;
    const sent: [number, string][] = [];
    for (const [offset, status] of runs) {
      const d = alertAfterRun(streak, status, T0 + offset, repeatAfterMs);
      streak = d.streak;
      if (d.alert) sent.push([offset, d.alert]);
    }
    return sent;
  }

  it("a failing endpoint retried 46 times in 70 s gives one failure alert", () => {
    const runs = Array.from({ length: 46 }, (_, i): [number, RunStatus] => [Math.round((i * 70 * SECOND) / 45), "failure"]);
    expect(simulate(runs)).toEqual([[0, "failure"]]);
  });

  it("reminds after repeat_after, counted from the last alert, and once per interval", () => {
    const runs: [number, RunStatus][] = [];
    for (let t = 0; t <= 3 * DAY; t += HOUR) runs.push([t, "failure"]);
    expect(simulate(runs)).toEqual([[0, "failure"], [DAY, "reminder"], [2 * DAY, "reminder"], [3 * DAY, "reminder"]]);
    // Just short of the interval: nothing yet.
    expect(simulate([[0, "failure"], [DAY - 1, "failure"], [DAY, "failure"]])).toEqual([[0, "failure"], [DAY, "reminder"]]);
    expect(simulate([[0, "failure"], [2 * SECOND, "failure"], [4 * SECOND, "failure"]], 3 * SECOND)).toEqual([[0, "failure"], [4 * SECOND, "reminder"]]);
  });

  it("one recovered alert when a failing host succeeds, and a new streak alerts at once", () => {
    expect(
      simulate([
        [0, "failure"],
        [SECOND, "failure"],
        [2 * SECOND, "success"],
        [3 * SECOND, "success"],
        [4 * SECOND, "failure"],
        [5 * SECOND, "failure"],
        [6 * SECOND, "success"],
      ]),
    ).toEqual([[0, "failure"], [2 * SECOND, "recovered"], [4 * SECOND, "failure"], [6 * SECOND, "recovered"]]);
  });

  it("nothing for successes on a healthy host, nor for interrupted runs", () => {
    expect(simulate([[0, "success"], [HOUR, "interrupted"], [2 * HOUR, "success"]])).toEqual([]);
    // An interruption in the middle of a streak neither ends it nor resets the reminder clock.
    expect(simulate([[0, "failure"], [HOUR, "interrupted"], [2 * HOUR, "failure"], [DAY, "failure"]])).toEqual([[0, "failure"], [DAY, "reminder"]]);
  });

  it("a streak taken over from a previous daemon keeps its reminder clock", () => {
    const start = { since: new Date(T0 - 2 * HOUR).toISOString(), alerted: new Date(T0 - 2 * HOUR).toISOString() };
    expect(simulate([[0, "failure"], [DAY - 2 * HOUR, "failure"]], DAY, start)).toEqual([[DAY - 2 * HOUR, "reminder"]]);
    expect(simulate([[0, "success"]], DAY, start)).toEqual([[0, "recovered"]]);
  });
});

describe("the daemon's alerts", () => {
  let dir: string | undefined;
  const children: ChildProcess[] = [];

  afterEach(async () => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  /**
   * A daemon whose pre_backup hook fails until a file says "ok": waits for `failures` failed
   * runs, lets the next run through, waits for its snapshot, stops the daemon. The daemon exits
   * only once its pending deliveries are done, so everything it sent has arrived.
   */
  async function failThenRecover(alerts: string, failures: number, files: Record<string, string> = {}): Promise<RunningDaemon> {
    dir = await mkdtemp(join(tmpdir(), "vaultik-alerts-"));
    for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
    const mode = join(dir, "mode");
    const r = await localRepo(
      dir,
      await cliKeys(),
      `hooks:\n  pre_backup: "[ \\"$(cat ${mode} 2>/dev/null)\\" = ok ] || exit 3"\n` +
        `alerts:\n${alerts}` +
        "backup_interval: 1s\nmin_time_between_run: 0s\nfull_scan_interval: 1h\n",
    );
    await writeFile(join(r.source, "a.txt"), "a");
    const d = startDaemon(r.config, children);
    // Failed retries at one-second intervals; then the hook lets the next run through.
    await d.waitFor(new RegExp(`backup #${failures} failed: pre_backup hook failed \\(exit code 3\\)`));
    await writeFile(mode, "ok");
    await d.waitFor(/saved snapshot/);
    d.child.kill("SIGTERM");
    expect(await d.exited).toBe(0);
    return d;
  }

  it("a host that fails every retry sends one failure alert, then one recovered alert", async () => {
    await failThenRecover(`  webhook: ${base}/hook\n  repeat_after: 24h\n`, 4);
    const kinds = received.filter((x) => x.url === "/hook").map((x) => (JSON.parse(x.body) as { kind: string }).kind);
    expect(kinds).toEqual(["failure", "recovered"]);
  });

  // Issue 19 (alerts): the daemon's real path to email and Slack, each with its own min_severity.
  it("email at min_severity error gets the failure only; Slack gets the failure and the recovery", async () => {
    const smtp = await startSmtp({ secure: false, user: "daemon@nas.example", password: "daemon-smtp-pw-9" });
    try {
      const d = await failThenRecover(
        `  slack: ${base}/services/T1/B1/tok\n` +
          `  email:\n    host: 127.0.0.1\n    port: ${smtp.port}\n    security: starttls\n    tls_insecure: true\n` +
          `    user: daemon@nas.example\n    password_file: smtp-pw\n    from: "vaultik <daemon@nas.example>"\n` +
          "    to: [ops@example.com]\n    min_severity: error\n",
        2,
        { "smtp-pw": "daemon-smtp-pw-9\n" },
      );
      const slack = received.filter((x) => x.url === "/services/T1/B1/tok").map((x) => JSON.parse(x.body) as { text: string });
      expect(slack.map((b) => b.text.split(":").slice(0, 2).join(":"))).toEqual([`vaultik: backup failed on ${hostname()}`, `vaultik: backups work again on ${hostname()}`]);
      expect(smtp.received).toHaveLength(1);
      const m = smtp.received[0]!;
      expect(m.secure).toBe(true);
      expect(header(m.raw, "Subject")).toBe(`vaultik: backup failed on ${hostname()}`);
      const body = decodeBody(m.raw);
      expect(body).toContain("pre_backup hook failed (exit code 3)");
      expect(body).toContain("Severity: error");
      expect(body).toMatch(/Run: #1 \(\w+\)/);
      expect(d.log()).not.toContain("daemon-smtp-pw-9");
    } finally {
      await smtp.close();
    }
  });
});
