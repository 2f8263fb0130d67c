import { readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collect, spawnCli, vaultik } from "./helpers/cli.js";
import { makeFleet3, type Fleet3 } from "./helpers/serve-fleet.js";
import { decodeBody, header, startSmtp } from "./helpers/smtp.js";

// Issue 18 item 1: `vaultik serve` through the built binary: refuses a non-loopback address
// without auth, starts, prints its URL, answers the API with the token, ends cleanly on SIGTERM.

let fx: Fleet3;

beforeAll(async () => {
  fx = await makeFleet3("serve:\n  stale_after: 48h\n");
}, 120_000);

afterAll(async () => fx?.cleanup());

/** What a stream has said so far, and a wait for the first match of a pattern in it (checked at each chunk). */
function watch(stream: Readable): { until(re: RegExp): Promise<RegExpExecArray> } {
  let text = "";
  let ended = false;
  const waiters: { re: RegExp; resolve: (m: RegExpExecArray) => void; reject: (e: Error) => void }[] = [];
  const settle = () => {
    for (const w of [...waiters]) {
      const m = w.re.exec(text);
      if (m) w.resolve(m);
      else if (ended) w.reject(new Error(`stream ended before ${w.re}; it said:\n${text}`));
      else continue;
      waiters.splice(waiters.indexOf(w), 1);
    }
  };
  stream.on("data", (d: Buffer) => {
    text += d.toString();
    settle();
  });
  stream.on("end", () => {
    ended = true;
    settle();
  });
  return {
    until: (re) =>
      new Promise((resolve, reject) => {
        waiters.push({ re, resolve, reject });
        settle();
      }),
  };
}

describe("vaultik serve (CLI)", () => {
  it("refuses a non-loopback --listen without a token or basic auth (exit 2, naming the flag)", async () => {
    const out = await vaultik(["serve", fx.r.repo, "--listen", "0.0.0.0:0"], { env: { VAULTIK_PRIVATE_KEY: fx.r.identity } });
    expect(out.code).toBe(2);
    expect(out.stderr).toMatch(/--listen.*0\.0\.0\.0:0 is not a loopback address.*--token-file or --basic-auth-file/);
  });

  it.each([
    [["--poll", "0s"], /--poll: must be at least 5s/],
    [["--stale-after", "0s"], /--stale-after: must be longer than 0/],
    [["--token-file", "/nonexistent/token"], /--token-file: cannot read \/nonexistent\/token: ENOENT/],
    [["--token-file", "T", "--basic-auth-file", "B"], /--token-file: give --token-file or --basic-auth-file, not both/],
  ])("refuses %j (exit 2)", async (args, message) => {
    const out = await vaultik(["serve", fx.r.repo, ...args], { env: { VAULTIK_PRIVATE_KEY: fx.r.identity } });
    expect([out.code, out.stderr]).toEqual([2, expect.stringMatching(message)]);
  });

  it("serves the overview with its token, and exits 0 on SIGTERM", async () => {
    const tokenFile = join(fx.dir, "token");
    writeFileSync(tokenFile, "cli-test-token\n", { mode: 0o600 });
    const child = spawnCli(["serve", "-c", fx.r.config, "--listen", "127.0.0.1:0", "--token-file", tokenFile, "--poll", "1h"], {
      env: { VAULTIK_PRIVATE_KEY: fx.r.identity, VAULTIK_CACHE_DIR: join(fx.dir, "cli-cache") },
    });
    const stdout = watch(child.stdout!);
    const stderr = watch(child.stderr!);
    const done = collect(child);
    try {
      const [, url] = await stdout.until(/^vaultik serve: listening on (http:\/\/127\.0\.0\.1:\d+\/)$/m);
      await stderr.until(/first poll done: 1 repositories, 4 snapshots read/);
      expect((await fetch(new URL("/api/overview", url))).status).toBe(401);
      expect((await fetch(new URL("/api/overview", url), { headers: { "X-API-Key": "wrong" } })).status).toBe(401);
      expect((await fetch(new URL("/api/overview", url), { headers: { "X-API-Key": "cli-test-token" } })).status).toBe(200);
      const res = await fetch(new URL("/api/overview", url), { headers: { Authorization: "Bearer cli-test-token" } });
      expect(res.status).toBe(200);
      const o = (await res.json()) as { repositories: { repo: string }[]; hosts: { host: string; status: string; staleAfterSeconds: number }[] };
      expect(o.repositories.map((r) => r.repo)).toEqual(["vaultik"]);
      expect(o.hosts.map((h) => [h.host, h.status, h.staleAfterSeconds])).toEqual([
        ["beta", "stale", 48 * 3600],
        ["alpha", "ok", 48 * 3600],
        ["gamma", "ok", 48 * 3600],
      ]);
    } finally {
      child.kill("SIGTERM");
    }
    const out = await done;
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toContain("vaultik serve: stopped");
    expect(out.stderr).not.toContain("cli-test-token");
  }, 120_000);

  // Issue 19 (alerts): the recovery machine reads the alerts section as the daemon does, so
  // email works there too, and each channel's min_severity holds.
  it("emails a stale host through the config's alerts.email; Slack at min_severity error stays quiet", async () => {
    const smtp = await startSmtp({ secure: false, user: "serve@ops.example", password: "serve-smtp-pw-1" });
    const slackPosts: string[] = [];
    const slack = createServer((req, res) => {
      slackPosts.push(req.url ?? "");
      res.end("ok");
    });
    await new Promise<void>((resolve) => slack.listen(0, "127.0.0.1", resolve));
    const config = join(fx.dir, "office.yml");
    writeFileSync(join(fx.dir, "smtp-pw"), "serve-smtp-pw-1\n");
    writeFileSync(
      config,
      readFileSync(fx.r.config, "utf8") +
        `alerts:\n  slack:\n    url: http://127.0.0.1:${(slack.address() as AddressInfo).port}/services/T/B/x\n    min_severity: error\n` +
        `  email:\n    host: 127.0.0.1\n    port: ${smtp.port}\n    tls_insecure: true\n    user: serve@ops.example\n    password_file: smtp-pw\n` +
        "    from: vaultik@ops.example\n    to: ops@example.com\n    min_severity: warning\n",
    );
    const child = spawnCli(["serve", "-c", config, "--listen", "127.0.0.1:0", "--poll", "1h"], {
      env: { VAULTIK_PRIVATE_KEY: fx.r.identity, VAULTIK_CACHE_DIR: join(fx.dir, "cli-cache-alerts") },
    });
    const stderr = watch(child.stderr!);
    const done = collect(child);
    try {
      // Alerts are sent within the poll, so they have all been delivered once it says it is done.
      await stderr.until(/first poll done: 1 repositories/);
    } finally {
      child.kill("SIGTERM");
      const closed = new Promise((resolve) => slack.close(resolve));
      slack.closeAllConnections();
      await closed;
      await smtp.close();
    }
    const out = await done;
    expect(out.code, out.stderr).toBe(0);
    expect(out.stderr).toContain("alert stale: no recent backup of beta");
    expect(smtp.received).toHaveLength(1);
    const m = smtp.received[0]!;
    expect([m.secure, m.from, m.to]).toEqual([true, "vaultik@ops.example", ["ops@example.com"]]);
    expect(header(m.raw, "Subject")).toBe("vaultik: no recent backup on beta");
    expect(decodeBody(m.raw)).toContain("Severity: warning");
    expect(slackPosts).toEqual([]);
    expect(out.stderr).not.toContain("serve-smtp-pw-1");
  }, 120_000);
});
