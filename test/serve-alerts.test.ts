import { execFileSync } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateIdentity, parseIdentity } from "../src/crypto/keys.js";
import { Alerter } from "../src/daemon/alerts.js";
import { Repository } from "../src/repo/repository.js";
import { Fleet } from "../src/serve/fleet.js";
import { FleetMetrics } from "../src/serve/metrics.js";
import { openFsStore } from "../src/store/fs.js";
import { HOUR, makeFleet3, type Fleet3 } from "./helpers/serve-fleet.js";
import { backupAt } from "./helpers/setup.js";

// Issue 18 item 3: alerts without agents. The server's poll, driven by an injected clock, sends
// the daemon's webhook alerts to a local receiver: stale, abandoned and recovered, each once
// (the daemon's de-duplication), and a reminder only after repeat_after.

interface Received {
  kind: string;
  host: string;
  message: string;
}

let fx: Fleet3;
let receiver: Server;
let received: Received[] = [];
let webhook: string;

beforeAll(async () => {
  fx = await makeFleet3();
  receiver = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8").on("data", (d: string) => (body += d)).on("end", () => {
      const a = JSON.parse(body) as Received & { source: string };
      received.push({ kind: a.kind, host: a.host, message: a.message });
      res.end("ok");
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  webhook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
}, 120_000);

afterAll(async () => {
  await new Promise<void>((resolve) => (receiver ? receiver.close(() => resolve()) : resolve()));
  await fx?.cleanup();
});

/** What arrived since the last call, in a stable order. */
function take(): [string, string][] {
  const out = received.map((a): [string, string] => [a.kind, a.host]).sort();
  received = [];
  return out;
}

describe("serve alerts", () => {
  it("stale, abandoned and recovered, once each; a reminder after repeat_after", async () => {
    // A copy of the repository: the backups below must not change the other tests' fleet.
    const copy = join(fx.dir, "repo-alerts");
    execFileSync("cp", ["-a", fx.r.repo, copy]);
    let now = fx.now;
    // alpha and gamma may be a month old: only beta goes stale, gamma's trouble is its abandoned run.
    const logs: string[] = [];
    const fleet = new Fleet({
      repos: [{
        slug: "main", repo: new Repository(openFsStore(copy)), retention: {}, staleAfterMs: 26 * HOUR, hostStaleAfterMs: new Map([["alpha", 720 * HOUR], ["gamma", 720 * HOUR]]),
        alerts: new Alerter({ webhook, log: (l) => logs.push(l) }),
      }],
      identities: fx.identities,
      now: () => now,
      repeatAfterMs: 24 * HOUR,
    });

    await fleet.poll();
    expect(take()).toEqual([["abandoned", "gamma"], ["stale", "beta"]]);
    expect(received).toEqual([]);

    await fleet.poll();
    now += HOUR;
    await fleet.poll();
    expect(take()).toEqual([]);

    // 24 h later both problems are still there: one reminder each.
    now += 24 * HOUR;
    await fleet.poll();
    const reminders = received.map((a) => a.message);
    expect(take()).toEqual([["abandoned", "gamma"], ["stale", "beta"]]);
    expect(reminders.find((m) => m.includes("beta"))).toMatch(/^still no recent backup of beta/);

    // beta backs up again; gamma's next run finishes.
    await backupAt({ ...fx.r, repo: copy }, now - HOUR / 2, "beta");
    await backupAt({ ...fx.r, repo: copy }, now - HOUR / 2, "gamma");
    await fleet.poll();
    expect(take()).toEqual([["recovered", "beta"], ["recovered", "gamma"]]);
    await fleet.poll();
    expect(take()).toEqual([]);
    expect(logs.filter((l) => l.includes("failed"))).toEqual([]);
  }, 120_000);

  it("a failing poll marks the repository's hosts error, counts it, alerts nothing, and recovers", async () => {
    const store = openFsStore(fx.r.repo);
    let failing = false;
    // The store answers until told to fail, as an S3 endpoint that went away.
    const flaky = new Proxy(store, {
      get(target, prop) {
        if (prop === "list" && failing) return () => { throw new Error("connect ECONNREFUSED 10.0.0.1:443"); };
        const v = Reflect.get(target, prop) as unknown;
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
    const fleet = new Fleet({
      repos: [{ slug: "main", repo: new Repository(flaky), retention: {}, staleAfterMs: 26 * HOUR, hostStaleAfterMs: new Map(), alerts: new Alerter({ webhook, log: () => {} }) }],
      identities: fx.identities,
      now: () => fx.now,
    });
    await fleet.poll();
    take();
    failing = true;
    await fleet.poll();
    const o = fleet.overview() as { pollErrors: number; repositories: { error: string | null }[]; hosts: { host: string; status: string }[] };
    expect(o.pollErrors).toBe(1);
    expect(o.repositories[0]!.error).toBe("connect ECONNREFUSED 10.0.0.1:443");
    expect(o.hosts.map((h) => [h.host, h.status])).toEqual([["alpha", "error"], ["beta", "error"], ["gamma", "error"]]);
    expect(take()).toEqual([]);
    const metrics = await new FleetMetrics(fleet).text();
    expect(metrics).toContain('vaultik_serve_poll_errors_total{repo="main"} 1');
    failing = false;
    await fleet.poll();
    expect((fleet.overview() as { repositories: { error: string | null }[] }).repositories[0]!.error).toBeNull();
    // Nothing changed for the hosts meanwhile: no new alert, no "recovered".
    expect(take()).toEqual([]);
  });

  it("a snapshot the key cannot open is listed with null sizes and not fetched again at the next poll", async () => {
    const other = parseIdentity((await generateIdentity()).identity);
    const logs: string[] = [];
    const fleet = new Fleet({
      repos: [{ slug: "main", repo: new Repository(openFsStore(fx.r.repo)), retention: {}, staleAfterMs: 26 * HOUR, hostStaleAfterMs: new Map() }],
      identities: [other],
      now: () => fx.now,
      log: (l) => logs.push(l),
    });
    await fleet.poll();
    const o = fleet.overview() as { hosts: { host: string; latest: { size: number | null; newBytes: number | null; files: number | null } }[] };
    expect(o.hosts.map((h) => [h.host, h.latest.size, h.latest.newBytes, h.latest.files])).toEqual([
      ["beta", null, null, null], ["gamma", null, null, null], ["alpha", null, null, null],
    ]);
    const unreadable = logs.filter((l) => l.includes("cannot be summarized"));
    expect(unreadable).toHaveLength(4);
    await fleet.poll();
    expect(logs.filter((l) => l.includes("cannot be summarized"))).toHaveLength(4);
    expect(logs.join("\n")).not.toContain(fx.r.identity);
  });
});
