import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { createServer as createTcpServer, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { parseConfig, type AlertsConfig } from "../src/config/index.js";
import { encodeRecipient } from "../src/crypto/keys.js";
import { WEBHOOK_SCHEMA } from "../src/daemon/alert-format.js";
import { Alerter, alertSeverity, type Alert } from "../src/daemon/alerts.js";
import type { RunRecord } from "../src/daemon/state.js";
import { discordProblems, slackProblems } from "./helpers/chat-shapes.js";
import { decodeBody, header, startSmtp, type TestSmtp } from "./helpers/smtp.js";

// Issue 19, "Alerts": email over SMTP (STARTTLS and implicit TLS, AUTH with a password from a
// file) against a real local SMTP server, Slack and Discord bodies checked against their
// documented shapes, severities and per-channel min_severity. Channels are built from a config
// file's text, the way the daemon and `vaultik serve` build them.

const PASSWORD = "smtp-Pa55word-7f3e";
const USER = "alerts@nas.example";

const RUN: RunRecord = {
  seq: 12,
  trigger: "schedule",
  status: "failure",
  started: "2025-06-01T11:00:00.000Z",
  finished: "2025-06-01T11:00:05.000Z",
  durationMs: 5000,
  error: "store unreachable: connect ECONNREFUSED 10.0.0.9:9000",
  filesNew: 3,
  filesChanged: 4,
  filesUnchanged: 5,
  bytesRead: 1234567,
  bytesUploaded: 8910,
  blobsUploaded: 2,
  errors: 0,
};

function alert(over: Partial<Alert> = {}): Alert {
  return { kind: "failure", message: `backup failed on nas: ${RUN.error}`, host: "nas", run: RUN, time: "2025-06-01T11:00:05.000Z", ...over };
}

interface Post {
  path: string;
  body: string;
  /** ntfy's Title header. */
  title?: string;
}

let http: Server;
let base: string;
const posts: Post[] = [];
let dir: string;

beforeAll(async () => {
  http = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      posts.push({ path: req.url ?? "", body: Buffer.concat(chunks).toString("utf8"), title: req.headers.title as string | undefined });
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("ok");
    });
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
});

afterAll(async () => {
  const closed = new Promise((resolve) => http.close(resolve));
  http.closeAllConnections();
  await closed;
});

const servers: TestSmtp[] = [];
beforeEach(async () => {
  posts.length = 0;
  dir = await mkdtemp(join(tmpdir(), "vaultik-alert-channels-"));
  await writeFile(join(dir, "smtp-password"), `${PASSWORD}\n`);
});

afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  await rm(dir, { recursive: true, force: true });
});

async function smtp(secure: boolean): Promise<TestSmtp> {
  const s = await startSmtp({ secure, user: USER, password: PASSWORD });
  servers.push(s);
  return s;
}

/** The `alerts:` section of a config file whose other keys are the minimum. */
function alertsOf(section: string, env: NodeJS.ProcessEnv = {}): AlertsConfig {
  const text = `age_recipient: ${encodeRecipient(Buffer.alloc(32, 1))}\nsource_dirs: [/data]\nstore: /repo\nalerts:\n${section}`;
  const config = parseConfig(text, { path: join(dir, "host.yml"), env });
  if (config.alerts === undefined) throw new Error("no alerts section");
  return config.alerts;
}

function emailSection(port: number, extra = ""): string {
  return (
    `  email:\n    host: 127.0.0.1\n    port: ${port}\n    user: ${USER}\n    password_file: smtp-password\n` +
    `    from: "vaultik <${USER}>"\n    to: [ops@example.com, oncall@example.com]\n${extra}`
  );
}

describe("alertSeverity", () => {
  it("failure and abandoned are error, stale is warning, recovered is info", () => {
    expect(alertSeverity(alert({ kind: "failure" }))).toBe("error");
    expect(alertSeverity(alert({ kind: "abandoned" }))).toBe("error");
    expect(alertSeverity(alert({ kind: "stale" }))).toBe("warning");
    expect(alertSeverity(alert({ kind: "recovered" }))).toBe("info");
  });
});

describe("email alerts", () => {
  it("STARTTLS with AUTH from password_file: the message has From, To, Subject and the run's figures", async () => {
    const s = await smtp(false);
    const lines: string[] = [];
    const alerts = alertsOf(emailSection(s.port, "    security: starttls\n    tls_insecure: true\n"));
    await new Alerter({ ...alerts, log: (l) => lines.push(l) }).send(alert({ app: "photos" }));
    expect(lines).toEqual([]);
    expect(s.logins).toEqual([`${USER}:ok`]);
    expect(s.received).toHaveLength(1);
    const m = s.received[0]!;
    expect(m.secure).toBe(true);
    expect(m.from).toBe(USER);
    expect(m.to).toEqual(["ops@example.com", "oncall@example.com"]);
    expect(header(m.raw, "From")).toBe(`vaultik <${USER}>`);
    expect(header(m.raw, "To")).toBe("ops@example.com, oncall@example.com");
    expect(header(m.raw, "Subject")).toBe("vaultik: backup of photos failed on nas");
    const body = decodeBody(m.raw);
    expect(body).toContain(`backup failed on nas: ${RUN.error}`);
    for (const line of ["Host: nas", "App: photos", "Severity: error", "Run: #12 (schedule)", "Started: 2025-06-01T11:00:00.000Z", "Duration: 5s", "Files: 3 new, 4 changed, 5 unchanged", "Read: 1.2 MiB; uploaded 8.7 KiB in 2 blobs"]) {
      expect(body).toContain(line);
    }
    expect(m.raw).not.toContain(PASSWORD);
  });

  it("refuses the server's self-signed certificate unless tls_insecure says otherwise", async () => {
    const s = await smtp(false);
    const lines: string[] = [];
    await new Alerter({ ...alertsOf(emailSection(s.port)), log: (l) => lines.push(l) }).send(alert());
    expect(s.received).toEqual([]);
    expect(s.logins).toEqual([]);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^alert \\(failure\\) to email 127\\.0\\.0\\.1:${s.port} failed: .*(certificate|self.signed)`, "i"));
  });

  it("tls_ca_file trusts a server whose self-signed certificate it holds, with verification on", async () => {
    // A certificate for 127.0.0.1 made for this test: unlike the built-in one it passes the
    // host name check, so trusting it as a CA is all the client needs.
    execFileSync("openssl", [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
      "-subj", "/CN=vaultik test relay", "-addext", "subjectAltName=IP:127.0.0.1",
      "-keyout", join(dir, "relay.key"), "-out", join(dir, "relay.pem"),
    ], { stdio: "ignore" });
    const tls = { key: readFileSync(join(dir, "relay.key"), "utf8"), cert: readFileSync(join(dir, "relay.pem"), "utf8") };
    const s = await startSmtp({ secure: false, user: USER, password: PASSWORD, tls });
    servers.push(s);
    const lines: string[] = [];
    await new Alerter({ ...alertsOf(emailSection(s.port)), log: (l) => lines.push(l) }).send(alert());
    expect(lines).toEqual([expect.stringMatching(/failed: self.signed certificate/)]);
    expect(s.received).toEqual([]);
    lines.length = 0;
    await new Alerter({ ...alertsOf(emailSection(s.port, "    tls_ca_file: relay.pem\n")), log: (l) => lines.push(l) }).send(alert());
    expect(lines).toEqual([]);
    expect(s.received.map((m) => [m.secure, header(m.raw, "Subject")])).toEqual([[true, "vaultik: backup failed on nas"]]);
  });

  it("implicit TLS (security: tls) delivers too", async () => {
    const s = await smtp(true);
    const lines: string[] = [];
    await new Alerter({ ...alertsOf(emailSection(s.port, "    security: tls\n    tls_insecure: true\n")), log: (l) => lines.push(l) }).send(alert({ kind: "recovered", message: "backups work again on nas: snapshot nas-2025", run: { ...RUN, status: "success", error: undefined, snapshotId: "nas-2025" } }));
    expect(lines).toEqual([]);
    expect(s.received).toHaveLength(1);
    expect(s.received[0]!.secure).toBe(true);
    expect(header(s.received[0]!.raw, "Subject")).toBe("vaultik: backups work again on nas");
    expect(decodeBody(s.received[0]!.raw)).toContain("Snapshot: nas-2025");
  });

  it("a wrong password is a logged failure that names the server but never the password", async () => {
    const s = await smtp(false);
    await writeFile(join(dir, "smtp-password"), "wrong-Secret-99x\n");
    const lines: string[] = [];
    await new Alerter({ ...alertsOf(emailSection(s.port, "    tls_insecure: true\n")), log: (l) => lines.push(l) }).send(alert());
    expect(s.logins).toEqual([`${USER}:rejected`]);
    expect(s.received).toEqual([]);
    expect(lines).toHaveLength(1);
    const line = lines[0]!;
    // The server quoted the password back in its reply; the log line masks it.
    expect(line).toMatch(new RegExp(`^alert \\(failure\\) to email 127\\.0\\.0\\.1:${s.port} failed: .*authentication failed`, "i"));
    expect(line).toContain("***");
    expect(line).not.toContain("wrong-Secret-99x");
    expect(line).not.toContain(PASSWORD);
  });

  it("a dead SMTP server is logged within the timeout and does not stop the other channels", async () => {
    const s = await smtp(false);
    await s.close();
    servers.length = 0;
    const lines: string[] = [];
    const a = alertsOf(`${emailSection(s.port, "    tls_insecure: true\n")}  slack: ${base}/slack/T000/B000/XXXX\n`);
    await new Alerter({ ...a, log: (l) => lines.push(l), timeoutMs: 2000 }).send(alert());
    expect(posts.map((p) => p.path)).toEqual(["/slack/T000/B000/XXXX"]);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^alert \(failure\) to email 127\.0\.0\.1:\d+ failed: .*ECONNREFUSED/);
  });
});

describe("delivery stays bounded", () => {
  it("an SMTP server that accepts and never greets is given up after timeoutMs", async () => {
    const sockets: Socket[] = [];
    const mute = createTcpServer((socket) => void sockets.push(socket));
    await new Promise<void>((resolve) => mute.listen(0, "127.0.0.1", resolve));
    try {
      const port = (mute.address() as AddressInfo).port;
      const lines: string[] = [];
      const t0 = Date.now();
      await new Alerter({ ...alertsOf(emailSection(port, "    tls_insecure: true\n")), log: (l) => lines.push(l), timeoutMs: 300 }).send(alert());
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(sockets).toHaveLength(1);
      expect(lines).toEqual([expect.stringMatching(new RegExp(`^alert \\(failure\\) to email 127\\.0\\.0\\.1:${port} failed: (Greeting never received|timed out after 300 ms)`))]);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => mute.close(resolve));
    }
  });

  it("ntfy's title names the app too", async () => {
    await new Alerter({ ...alertsOf(`  ntfy: ${base}/topic\n`), log: () => {} }).send(alert({ app: "photos" }));
    expect(posts.map((p) => [p.path, p.title])).toEqual([["/topic", "vaultik failure on nas (photos)"]]);
  });
});

describe("Slack and Discord", () => {
  const long = `backup failed on nas: ${"pg_dump: error: connection to server failed; ".repeat(300)}`;

  it("Slack gets text and blocks in the documented shape, a long message cut to fit", async () => {
    const lines: string[] = [];
    const a = new Alerter({ ...alertsOf(`  slack: ${base}/services/T000/B000/XXXX\n`), log: (l) => lines.push(l) });
    await a.send(alert({ app: "photos" }));
    await a.send(alert({ message: long }));
    await a.send(alert({ kind: "recovered", message: "backups work again on nas: snapshot s1 <&>", run: undefined }));
    expect(lines).toEqual([]);
    expect(posts).toHaveLength(3);
    for (const p of posts) {
      expect(p.path).toBe("/services/T000/B000/XXXX");
      expect(slackProblems(JSON.parse(p.body))).toEqual([]);
    }
    const [first, cut, ok] = posts.map((p) => JSON.parse(p.body) as { text: string; blocks: { type: string; text?: { text: string }; fields?: { text: string }[] }[] });
    expect(first!.text).toContain("vaultik: backup of photos failed on nas");
    expect(JSON.stringify(first!.blocks)).toContain("photos");
    expect(JSON.stringify(first!.blocks)).toContain("error");
    // The long message is cut, and says so, instead of being refused by Slack.
    const section = cut!.blocks.find((b) => b.type === "section" && b.text !== undefined)!;
    expect(section.text!.text.endsWith("…")).toBe(true);
    expect(section.text!.text.startsWith("backup failed on nas: pg_dump")).toBe(true);
    // mrkdwn control characters are escaped, as Slack asks.
    expect(JSON.stringify(ok!.blocks)).toContain("s1 &lt;&amp;&gt;");
  });

  it("Discord gets content and an embed within its limits, a 13 kB failure message truncated", async () => {
    const lines: string[] = [];
    const a = new Alerter({ ...alertsOf(`  discord:\n    url: ${base}/api/webhooks/123/tok\n`), log: (l) => lines.push(l) });
    await a.send(alert({ message: long, app: "photos" }));
    await a.send(alert({ kind: "stale", message: "no backup has succeeded on nas since 2025-05-30T00:00:00.000Z", run: undefined }));
    await a.send(alert({ kind: "recovered", message: "@everyone backups work again", run: undefined }));
    expect(lines).toEqual([]);
    expect(long.length).toBeGreaterThan(13_000);
    expect(posts).toHaveLength(3);
    for (const p of posts) expect(discordProblems(JSON.parse(p.body))).toEqual([]);
    type Embed = { title: string; description: string; color: number; fields: { name: string; value: string }[] };
    const [fail, stale, ok] = posts.map((p) => JSON.parse(p.body) as { content: string; embeds: Embed[]; allowed_mentions: unknown });
    expect(fail!.embeds).toHaveLength(1);
    expect(fail!.embeds[0]!.description.endsWith("…")).toBe(true);
    expect(fail!.embeds[0]!.description.startsWith("backup failed on nas: pg_dump")).toBe(true);
    expect(fail!.embeds[0]!.title).toBe("vaultik: backup of photos failed on nas");
    expect(fail!.embeds[0]!.fields).toContainEqual({ name: "App", value: "photos", inline: true });
    // Colour by severity: red, amber, green.
    expect([fail!.embeds[0]!.color, stale!.embeds[0]!.color, ok!.embeds[0]!.color]).toEqual([0xd93025, 0xf29900, 0x188038]);
    // A message cannot ping a whole channel.
    expect(ok!.allowed_mentions).toEqual({ parse: [] });
  });
});

describe("per-channel min_severity", () => {
  it("email at error and Slack at info: a recovery goes to Slack only, a failure to both", async () => {
    const s = await smtp(false);
    const lines: string[] = [];
    const a = new Alerter({
      ...alertsOf(`${emailSection(s.port, "    tls_insecure: true\n    min_severity: error\n")}  slack:\n    url: ${base}/slack\n    min_severity: info\n`),
      log: (l) => lines.push(l),
    });
    await a.send(alert({ kind: "recovered", message: "backups work again on nas: snapshot s1" }));
    expect(posts).toHaveLength(1);
    expect(s.received).toHaveLength(0);
    await a.send(alert());
    expect(posts).toHaveLength(2);
    expect(s.received).toHaveLength(1);
    expect(header(s.received[0]!.raw, "Subject")).toBe("vaultik: backup failed on nas");
    expect(lines).toEqual([]);
  });

  it("alerts.min_severity is the default of every channel, and a plain URL takes it too", async () => {
    const a = new Alerter({
      ...alertsOf(`  min_severity: warning\n  webhook: ${base}/hook\n  ntfy:\n    url: ${base}/topic\n    min_severity: info\n`),
      log: () => {},
    });
    await a.send(alert({ kind: "recovered", message: "ok again" }));
    expect(posts.map((p) => p.path)).toEqual(["/topic"]);
    await a.send(alert({ kind: "stale", message: "late", run: undefined }));
    expect(posts.slice(1).map((p) => p.path).sort()).toEqual(["/hook", "/topic"]);
  });
});

describe("the generic webhook's JSON", () => {
  it("keeps the old fields and adds schema, severity, title and app", async () => {
    await new Alerter({ ...alertsOf(`  webhook: ${base}/hook\n`), log: () => {} }).send(alert({ app: "photos" }));
    expect(JSON.parse(posts[0]!.body)).toEqual({
      schema: 1,
      source: "vaultik",
      kind: "failure",
      severity: "error",
      title: "vaultik: backup of photos failed on nas",
      message: `backup failed on nas: ${RUN.error}`,
      host: "nas",
      app: "photos",
      time: "2025-06-01T11:00:05.000Z",
      run: RUN,
    });
  });

  it("is documented field by field in docs/ALERTS.md, whose example has the fields and types sent", async () => {
    await new Alerter({ ...alertsOf(`  webhook: ${base}/hook\n`), log: () => {} }).send(alert({ app: "photos" }));
    const sent = JSON.parse(posts[0]!.body) as Record<string, unknown>;
    const doc = await readFile(new URL("../docs/ALERTS.md", import.meta.url), "utf8");
    const example = JSON.parse(/```json\n([\s\S]*?)```/.exec(doc)![1]!) as Record<string, unknown>;
    expect(example["schema"]).toBe(WEBHOOK_SCHEMA);
    const shape = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, v === null ? "null" : typeof v]));
    expect(shape(example)).toEqual(shape(sent));
    expect(Object.keys(example.run as object).sort()).toEqual(expect.arrayContaining(Object.keys(sent.run as object).sort()));
    // Every field, and every field of run, has a row in the table: | `name` | type | …
    for (const field of [...Object.keys(sent), ...Object.keys(sent.run as object).map((k) => `run.${k}`)]) {
      expect(doc, field).toMatch(new RegExp(`^\\| \`${field.replace(".", "\\.")}\` \\|`, "m"));
    }
  });
});
