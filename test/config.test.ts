import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { CONFIG_KEYS, describeConfigKeys, loadConfig, parseConfig, type Config } from "../src/config/index.js";
import { encodeIdentity, encodeRecipient } from "../src/crypto/keys.js";
import { ConfigError } from "../src/errors.js";
import { configError } from "./helpers/config-error.js";
import { parseDuration, parseRate, parseSize } from "../src/config/units.js";
import { formatBytes, formatDuration } from "../src/util/units.js";

// Every expected value below is worked out by hand. Configs are built as objects and turned
// into YAML, so each case shows only the keys it is about on top of a minimal valid config.

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

const R1 = encodeRecipient(Buffer.alloc(32, 1));
const R2 = encodeRecipient(Buffer.alloc(32, 2));
const PRIVATE_KEY = encodeIdentity(Buffer.alloc(32, 7));
const CONFIG_PATH = "/cfg/host.yml";
const BASE = { age_recipient: R1, source_dirs: ["/data"], store: "/repo" };
const NO_ENV: NodeJS.ProcessEnv = { HOME: "/home/u" };
/** The default index_path: `<dir>/<config name>-<hash12>.sqlite` (test/index-path.test.ts covers the hash). */
const defaultIndex = (dir: string, name: string) => expect.stringMatching(new RegExp(`^${dir.replaceAll(".", "\\.")}/${name}-[0-9a-f]{12}\\.sqlite$`));

interface ParseOptions {
  env?: NodeJS.ProcessEnv;
  files?: Record<string, string>;
}

/** A fake file system for `*_file` keys: unknown paths fail the way fs does. */
function fakeReadFile(files: Record<string, string>): (path: string) => string {
  return (path) => {
    const content = files[path];
    if (content === undefined) throw Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: "ENOENT" });
    return content;
  };
}

function parseYaml(text: string, { env = NO_ENV, files = {} }: ParseOptions = {}): Config {
  return parseConfig(text, { path: CONFIG_PATH, env, readFile: fakeReadFile(files) });
}

/** BASE with `overrides` applied; an undefined override removes the key. */
function parse(overrides: Record<string, unknown>, options?: ParseOptions): Config {
  return parseYaml(stringify({ ...BASE, ...overrides }), options);
}

describe("parseSize", () => {
  const good: [string | number, number][] = [
    [0, 0],
    [4096, 4096],
    ["4096", 4096],
    ["12B", 12],
    ["1K", 1000],
    ["1kb", 1000],
    ["2 MB", 2_000_000],
    ["3G", 3_000_000_000],
    ["1TB", 1e12],
    ["1KiB", KiB],
    ["64mib", 64 * MiB],
    ["1.5GiB", 1.5 * GiB],
    ["1 TiB", 1024 * GiB],
    ["0.5KiB", 512],
    [".5 KiB", 512],
    ["1.0001KiB", 1024], // 1024.1024 rounded down
    ["  8KiB ", 8 * KiB],
  ];
  it.each(good)("%j is %d bytes", (text, bytes) => {
    expect(parseSize(text, "chunk_size")).toBe(bytes);
  });

  const bad: [string | number, RegExp][] = [
    ["", /expected a size .*got ""/],
    ["lots", /expected a size .*got "lots"/],
    ["-1MiB", /expected a size .*got "-1MiB"/],
    ["1e3", /expected a size .*got "1e3"/],
    ["10XB", /unknown unit "XB" in "10XB"/],
    ["1.5", /whole number of bytes.*got "1.5"/],
    [1.5, /whole number of bytes.*got 1.5/],
    [-1, /whole number of bytes.*got -1/],
    ["99999999TiB", /"99999999TiB" is too large/],
  ];
  it.each(bad)("%j is refused, naming the key and quoting the value", (text, message) => {
    const err = configError(() => parseSize(text, "blob_size_limit"));
    expect(err.key).toBe("blob_size_limit");
    expect(err.message).toMatch(/^config: blob_size_limit: /);
    expect(err.message).toMatch(message);
  });
});

describe("parseDuration", () => {
  const good: [string, number][] = [
    ["450ms", 450],
    ["30s", 30 * SECOND],
    ["15m", 15 * MINUTE],
    ["1h", HOUR],
    ["1h30m", 90 * MINUTE],
    ["1h 30m", 90 * MINUTE],
    ["1.5h", 90 * MINUTE],
    ["2d", 2 * DAY],
    ["1w", 7 * DAY],
    ["1d12h", 36 * HOUR],
    ["1m500ms", MINUTE + 500],
    ["0s", 0],
    ["0.0005s", 0], // half a millisecond, rounded down
  ];
  it.each(good)("%j is %d ms", (text, ms) => {
    expect(parseDuration(text, "backup_interval")).toBe(ms);
  });

  const bad: [string | number, RegExp][] = [
    ["15", /needs a unit, e\.g\. 15m, got "15"/],
    [15, /needs a unit, e\.g\. 15m, got 15/],
    ["", /expected a duration .*got ""/],
    ["1h30", /expected a duration .*got "1h30"/],
    ["1H", /expected a duration .*got "1H"/],
    ["1y", /expected a duration .*got "1y"/],
    ["-5m", /expected a duration .*got "-5m"/],
    ["soon", /expected a duration .*got "soon"/],
  ];
  it.each(bad)("%j is refused, naming the key and quoting the value", (text, message) => {
    const err = configError(() => parseDuration(text, "hooks.timeout"));
    expect(err.key).toBe("hooks.timeout");
    expect(err.message).toMatch(message);
  });
});

describe("parseRate", () => {
  it.each([
    ["10MiB/s", 10 * MiB],
    ["500KB/s", 500_000],
    ["1.5 MiB/s", 1.5 * MiB],
    ["100 /s", 100],
  ] as const)("%j is %d bytes per second", (text, rate) => {
    expect(parseRate(text, "limit_upload")).toBe(rate);
  });

  it.each([
    ["10MiB", /expected a rate such as 10MiB\/s.*got "10MiB"/],
    ["10MiB/h", /expected a rate .*got "10MiB\/h"/],
    [1000, /expected a rate .*got 1000/],
    ["fast/s", /expected a size .*got "fast\/s"/],
    ["10Mbit/s", /unknown unit "Mbit" in "10Mbit\/s"/],
    ["0B/s", /more than 0 .*got "0B\/s"/],
  ] as const)("%j is refused", (text, message) => {
    const err = configError(() => parseRate(text, "limit_upload"));
    expect(err.key).toBe("limit_upload");
    expect(err.message).toMatch(message);
  });
});

describe("formatBytes and formatDuration", () => {
  it.each([
    [0, "0 B"],
    [1, "1 B"],
    [1023, "1023 B"],
    [1024, "1 KiB"],
    [1536, "1.5 KiB"],
    [1.5 * MiB, "1.5 MiB"],
    [MiB - 1, "1 MiB"], // 1023.999 KiB rounds to a whole MiB, not "1024 KiB"
    [64 * MiB, "64 MiB"],
    [1.25 * GiB, "1.3 GiB"],
    [3 * 1024 * GiB, "3 TiB"],
    [-2048, "-2 KiB"],
  ])("formatBytes(%d) is %j", (n, text) => {
    expect(formatBytes(n)).toBe(text);
  });

  it.each([
    [0, "0ms"],
    [450, "450ms"],
    [999.4, "999ms"],
    [999.6, "1s"],
    [3210, "3.2s"],
    [59_940, "59.9s"],
    [59_960, "1m"],
    [125 * SECOND, "2m 5s"],
    [HOUR + 2 * MINUTE + 59 * SECOND, "1h 2m"],
    [2 * HOUR, "2h"],
    [2 * HOUR - 1, "2h"],
    [DAY + HOUR, "1d 1h"],
    [30 * DAY, "30d"],
  ])("formatDuration(%d) is %j", (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});

describe("parseConfig: a minimal config", () => {
  it("fills in every default", () => {
    const c = parse({});
    expect(c).toMatchObject({
      path: CONFIG_PATH,
      dir: "/cfg",
      recipientKeys: [R1],
      sourceDirs: ["/data"],
      exclude: [],
      store: { kind: "fs", path: "/repo" },
      backupInterval: HOUR,
      fullScanInterval: DAY,
      minTimeBetweenRun: 15 * MINUTE,
      indexPath: defaultIndex("/home/u/.local/state/vaultik", "host"),
      chunkSize: MiB,
      blobSizeLimit: 16 * MiB,
      indexPrefix: "index/",
      retention: {},
      commands: [],
    });
    expect(c.recipients).toHaveLength(1);
    expect(c.recipients[0]?.publicKey).toEqual(Buffer.alloc(32, 1));
    for (const absent of ["schedule", "hooks", "status", "alerts", "limitUpload"] as const) expect(c[absent]).toBeUndefined();
  });

  it("resolves a relative config path against the working directory", () => {
    const c = parseConfig(stringify(BASE), { path: "rel/x.yaml", env: NO_ENV });
    expect(c.path).toBe(join(process.cwd(), "rel/x.yaml"));
    expect(c.dir).toBe(join(process.cwd(), "rel"));
  });
});

describe("parseConfig: every key", () => {
  const cases: [string, Record<string, unknown>, (c: Config) => unknown, unknown, ParseOptions?][] = [
    ["age_recipient as a list", { age_recipient: [R1, R2] }, (c) => c.recipientKeys, [R1, R2]],
    ["age_recipient duplicates are dropped", { age_recipient: [R1, ` ${R1} `, R2] }, (c) => c.recipientKeys, [R1, R2]],
    ["age_recipient list gives one key object each", { age_recipient: [R1, R2] }, (c) => c.recipients.map((r) => r.publicKey[0]), [1, 2]],
    [
      "age_recipient_file, relative to the config dir, with comments",
      { age_recipient: undefined, age_recipient_file: "keys.txt" },
      (c) => c.recipientKeys,
      [R1, R2],
      { files: { "/cfg/keys.txt": `# backup keys\n${R1}\n\n  ${R2}  \r\n# old: none\n` } },
    ],
    ["source_dirs: relative, normalised, deduplicated", { source_dirs: ["./data", "/etc/", "/etc", "a/../b", "/cfg/data"] }, (c) => c.sourceDirs, ["/cfg/data", "/etc", "/cfg/b"]],
    ["source_dirs: ~ is the home directory", { source_dirs: ["~/docs", "~"] }, (c) => c.sourceDirs, ["/home/u/docs", "/home/u"]],
    ["exclude", { exclude: ["*.log", "node_modules/", "/build"] }, (c) => c.exclude, ["*.log", "node_modules/", "/build"]],
    ["exclude left empty", { exclude: null }, (c) => c.exclude, []],
    ["store: relative", { store: "backups/../repo/" }, (c) => c.store, { kind: "fs", path: "/cfg/repo" }],
    ["store: file URL", { store: "file:///var/backups/vaultik/" }, (c) => c.store, { kind: "fs", path: "/var/backups/vaultik" }],
    ["s3: bucket only", { store: undefined, s3: { bucket: "my-bucket" } }, (c) => c.store, { kind: "s3", bucket: "my-bucket", prefix: "" }],
    [
      "s3: every key",
      {
        store: undefined,
        s3: {
          endpoint: "http://127.0.0.1:9000",
          bucket: "my-bucket",
          prefix: "/host1/daily//",
          access_key_id: "AKIAEXAMPLE",
          secret_access_key: "s3cr3t",
          region: "eu-west-1",
          force_path_style: true,
        },
      },
      (c) => c.store,
      {
        kind: "s3",
        bucket: "my-bucket",
        prefix: "host1/daily",
        endpoint: "http://127.0.0.1:9000",
        region: "eu-west-1",
        accessKeyId: "AKIAEXAMPLE",
        secretAccessKey: "s3cr3t",
        forcePathStyle: true,
      },
    ],
    ["backup_interval", { backup_interval: "30m" }, (c) => c.backupInterval, 30 * MINUTE],
    ["full_scan_interval", { full_scan_interval: "1w" }, (c) => c.fullScanInterval, 7 * DAY],
    ["min_time_between_run may be 0", { min_time_between_run: "0s" }, (c) => c.minTimeBetweenRun, 0],
    ["schedule", { schedule: "0 2 * * *" }, (c) => c.schedule, "0 2 * * *"],
    ["schedule with seconds", { schedule: "30 0 2 * * *" }, (c) => c.schedule, "30 0 2 * * *"],
    ["index_path absolute", { index_path: "/var/lib/vaultik/index.sqlite" }, (c) => c.indexPath, "/var/lib/vaultik/index.sqlite"],
    ["index_path relative", { index_path: "state/i.sqlite" }, (c) => c.indexPath, "/cfg/state/i.sqlite"],
    ["index_path default under XDG_STATE_HOME", {}, (c) => c.indexPath, defaultIndex("/xdg/state/vaultik", "host"), { env: { HOME: "/home/u", XDG_STATE_HOME: "/xdg/state" } }],
    ["index_path default ignores a relative XDG_STATE_HOME", {}, (c) => c.indexPath, defaultIndex("/home/u/.local/state/vaultik", "host"), { env: { HOME: "/home/u", XDG_STATE_HOME: "state" } }],
    ["chunk_size as a YAML integer", { chunk_size: 65536 }, (c) => c.chunkSize, 64 * KiB],
    ["chunk_size smallest", { chunk_size: "256B" }, (c) => c.chunkSize, 256],
    // The default blob_size_limit is exactly 4 × the largest chunk_size.
    ["chunk_size largest, default blob_size_limit", { chunk_size: "16MiB" }, (c) => [c.chunkSize, c.blobSizeLimit], [16 * MiB, 64 * MiB]],
    ["blob_size_limit 1 MiB with small chunks", { chunk_size: "64KiB", blob_size_limit: "1MiB" }, (c) => c.blobSizeLimit, MiB],
    ["blob_size_limit exactly 4 × chunk_size", { chunk_size: "2MiB", blob_size_limit: "8MiB" }, (c) => c.blobSizeLimit, 8 * MiB],
    ["blob_size_limit decimal", { blob_size_limit: "100MB" }, (c) => c.blobSizeLimit, 100_000_000],
    ["index_prefix normalised", { index_prefix: "//meta//snapshots" }, (c) => c.indexPrefix, "meta/snapshots/"],
    ["index_prefix trailing slashes collapsed", { index_prefix: "idx///" }, (c) => c.indexPrefix, "idx/"],
    [
      "retention: every key",
      { retention: { keep_last: 7, keep_hourly: 24, keep_daily: 7, keep_weekly: 4, keep_monthly: 12, keep_yearly: 3, keep_within: "30d" } },
      (c) => c.retention,
      { keepLast: 7, keepHourly: 24, keepDaily: 7, keepWeekly: 4, keepMonthly: 12, keepYearly: 3, keepWithin: 30 * DAY },
    ],
    ["retention: only some keys, 0 allowed", { retention: { keep_daily: 0, keep_within: "36h" } }, (c) => c.retention, { keepDaily: 0, keepWithin: 36 * HOUR }],
    ["hooks with default timeout", { hooks: { pre_backup: "systemctl stop app" } }, (c) => c.hooks, { preBackup: "systemctl stop app", timeout: 10 * MINUTE }],
    ["hooks: every key", { hooks: { pre_backup: "a", post_backup: "b", timeout: "5m" } }, (c) => c.hooks, { preBackup: "a", postBackup: "b", timeout: 5 * MINUTE }],
    [
      "commands",
      {
        commands: [
          { name: "postgres", run: "pg_dump -Fc app", path: "databases/app.dump" },
          { name: "etcd", run: "etcdctl snapshot save /dev/stdout", path: "./etcd//snap.db" },
        ],
      },
      (c) => c.commands,
      [
        { name: "postgres", run: "pg_dump -Fc app", path: "databases/app.dump" },
        { name: "etcd", run: "etcdctl snapshot save /dev/stdout", path: "etcd/snap.db" },
      ],
    ],
    ["status", { status: { listen: "127.0.0.1:9812", token: "t0k" } }, (c) => c.status, { listen: "127.0.0.1:9812", host: "127.0.0.1", port: 9812, token: "t0k" }],
    ["status: IPv6 and port 0", { status: { listen: "[::1]:0" } }, (c) => c.status, { listen: "[::1]:0", host: "::1", port: 0 }],
    ["status: hostname and port 65535", { status: { listen: "localhost:65535" } }, (c) => c.status?.port, 65535],
    [
      "alerts",
      { alerts: { webhook: "https://hooks.example.com/x", ntfy: "https://ntfy.sh/topic", stale_after: "2d", repeat_after: "6h" } },
      (c) => c.alerts,
      {
        webhook: { url: "https://hooks.example.com/x", minSeverity: "info" },
        ntfy: { url: "https://ntfy.sh/topic", minSeverity: "info" },
        minSeverity: "info",
        staleAfter: 2 * DAY,
        repeatAfter: 6 * HOUR,
      },
    ],
    // Issue 19 (alerts): channels as a URL or as {url, min_severity}; email with its defaults.
    [
      "alerts: channels as mappings, min_severity from alerts.min_severity",
      {
        alerts: {
          min_severity: "warning",
          webhook: { url: "https://hooks.example.com/x", min_severity: "info" },
          slack: "https://hooks.slack.com/services/T0/B0/x",
          discord: { url: "https://discord.com/api/webhooks/1/t" },
        },
      },
      (c) => [c.alerts?.minSeverity, c.alerts?.webhook, c.alerts?.slack, c.alerts?.discord],
      [
        "warning",
        { url: "https://hooks.example.com/x", minSeverity: "info" },
        { url: "https://hooks.slack.com/services/T0/B0/x", minSeverity: "warning" },
        { url: "https://discord.com/api/webhooks/1/t", minSeverity: "warning" },
      ],
    ],
    [
      "alerts.email: every key, password from its file",
      {
        alerts: {
          email: {
            host: "smtp.example.com", port: 2525, security: "tls", user: "u@example.com", password_file: "pw", from: "vaultik <u@example.com>",
            to: ["a@example.com", "b@example.com"], tls_ca_file: "/ca.pem", tls_insecure: false, min_severity: "error",
          },
        },
      },
      (c) => c.alerts?.email,
      {
        host: "smtp.example.com", port: 2525, security: "tls", user: "u@example.com", password: "s3cret-pw", from: "vaultik <u@example.com>",
        to: ["a@example.com", "b@example.com"], tlsCa: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", tlsInsecure: false, minSeverity: "error",
      },
      { files: { "/cfg/pw": "s3cret-pw\n", "/ca.pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n" } },
    ],
    [
      "alerts.email: port and security default from each other, to may be one address, password from the environment",
      {
        alerts: {
          email: { host: "a", user: "u", from: "f@x.org", to: "t@x.org" },
        },
      },
      (c) => [c.alerts?.email?.port, c.alerts?.email?.security, c.alerts?.email?.to, c.alerts?.email?.password, c.alerts?.email?.minSeverity],
      [587, "starttls", ["t@x.org"], "env-pw-123", "info"],
      { env: { ...NO_ENV, VAULTIK_ALERTS_EMAIL_PASSWORD: "env-pw-123" } },
    ],
    ["alerts.email: port 465 means implicit TLS", { alerts: { email: { host: "a", port: 465, from: "f@x.org", to: ["t@x.org"] } } }, (c) => c.alerts?.email?.security, "tls"],
    ["alerts.email: security tls means port 465", { alerts: { email: { host: "a", security: "tls", from: "f@x.org", to: ["t@x.org"] } } }, (c) => c.alerts?.email?.port, 465],
    ["alerts.email: security none means port 25", { alerts: { email: { host: "a", security: "none", from: "f@x.org", to: ["t@x.org"] } } }, (c) => c.alerts?.email?.port, 25],
    ["alerts: stale_after default", { alerts: { ntfy: "http://ntfy.local/t" } }, (c) => c.alerts?.staleAfter, 26 * HOUR],
    ["alerts: repeat_after default", { alerts: { ntfy: "http://ntfy.local/t" } }, (c) => c.alerts?.repeatAfter, 24 * HOUR],
    ["limit_upload", { limit_upload: "10MiB/s" }, (c) => c.limitUpload, 10 * MiB],
    ["an empty section counts as not given", { hooks: null, status: null }, (c) => [c.hooks, c.status], [undefined, undefined]],
  ];
  it.each(cases)("%s", (_name, overrides, pick, expected, options) => {
    expect(pick(parse(overrides, options))).toEqual(expected);
  });
});

describe("parseConfig: errors name the key", () => {
  const cases: [string, Record<string, unknown>, string, RegExp, ParseOptions?][] = [
    // Unknown keys, with suggestions at every level.
    ["unknown top-level key", { chunk_sise: "1MiB" }, "chunk_sise", /unknown key \(did you mean chunk_size\?\)/],
    ["unknown key, different case and dash", { "Chunk-Size": "1MiB" }, "Chunk-Size", /did you mean chunk_size\?/],
    ["unknown key with nothing close", { compression: "zstd" }, "compression", /unknown key$/],
    ["unknown s3 key", { store: undefined, s3: { bucket: "abc", secret_acess_key: "x" } }, "s3.secret_acess_key", /did you mean secret_access_key\?/],
    ["unknown retention key", { retention: { keep_dayly: 7 } }, "retention.keep_dayly", /did you mean keep_daily\?/],
    ["unknown hooks key", { hooks: { pre: "x" } }, "hooks.pre", /unknown key/],
    ["unknown command key", { commands: [{ name: "a", run: "b", path: "c", user: "x" }] }, "commands[0].user", /unknown key/],
    ["unknown status key", { status: { listen: "h:1", tokn: "x" } }, "status.tokn", /did you mean token\?/],
    ["unknown alerts key", { alerts: { web_hook: "https://x" } }, "alerts.web_hook", /did you mean webhook\?/],
    // age_recipient
    ["missing recipient", { age_recipient: undefined }, "age_recipient", /required/],
    ["recipient of the wrong type", { age_recipient: 5 }, "age_recipient", /expected a string or a list of strings, got a number/],
    ["empty recipient list", { age_recipient: [] }, "age_recipient", /at least one/],
    ["empty recipient string", { age_recipient: " " }, "age_recipient", /must not be empty/],
    ["private key as recipient", { age_recipient: PRIVATE_KEY }, "age_recipient", /private key/],
    ["private key in a recipient list", { age_recipient: [R1, R2, PRIVATE_KEY] }, "age_recipient[2]", /private key/],
    ["malformed recipient", { age_recipient: "age1nope" }, "age_recipient", /not a valid age public key/],
    ["recipient list item of the wrong type", { age_recipient: [R1, { k: 1 }] }, "age_recipient[1]", /expected a string, got a mapping/],
    ["recipient and recipient file", { age_recipient_file: "k.txt" }, "age_recipient", /either age_recipient or age_recipient_file, not both/],
    ["unreadable recipient file", { age_recipient: undefined, age_recipient_file: "k.txt" }, "age_recipient_file", /cannot read \/cfg\/k\.txt: no such file/],
    ["recipient file with no keys", { age_recipient: undefined, age_recipient_file: "/k" }, "age_recipient_file", /no age1… line/, { files: { "/k": "# nothing\n\n" } }],
    ["private key in a recipient file", { age_recipient: undefined, age_recipient_file: "/k" }, "age_recipient_file line 2", /private key/, { files: { "/k": `${R1}\n${PRIVATE_KEY}\n` } }],
    // source_dirs and exclude
    ["missing source_dirs", { source_dirs: undefined }, "source_dirs", /required/],
    ["source_dirs as a string", { source_dirs: "/etc" }, "source_dirs", /expected a list, got a string \(write \[item\]/],
    ["empty source_dirs", { source_dirs: [] }, "source_dirs", /at least one/],
    ["source_dirs item not a string", { source_dirs: ["/a", 3] }, "source_dirs[1]", /expected a string, got a number \(put it in quotes\)/],
    ["source_dirs empty item", { source_dirs: ["/a", "/b", ""] }, "source_dirs[2]", /must not be empty/],
    ["exclude not a list", { exclude: "*.log" }, "exclude", /expected a list, got a string/],
    ["exclude empty pattern", { exclude: ["*.log", ""] }, "exclude[1]", /must not be empty/],
    // store and s3
    ["neither store nor s3", { store: undefined }, "store", /required: give store .* or an s3 section/],
    ["both store and s3", { s3: { bucket: "abc" } }, "store", /either store .* or s3 .*, not both/],
    ["store of the wrong type", { store: ["/a"] }, "store", /expected a string, got a list/],
    ["store with an s3 URL", { store: "s3://bucket/x" }, "store", /s3:\/\/ URLs are not supported here/],
    ["store with a remote file URL", { store: "file://server/share" }, "store", /not a local file:\/\/\/ URL/],
    ["s3 not a mapping", { store: undefined, s3: "my-bucket" }, "s3", /expected a mapping, got a string/],
    ["s3 without bucket", { store: undefined, s3: { region: "x" } }, "s3.bucket", /required when s3 is given/],
    ["bucket too short", { store: undefined, s3: { bucket: "ab" } }, "s3.bucket", /3 to 63 characters, got 2/],
    ["bucket too long", { store: undefined, s3: { bucket: "b".repeat(64) } }, "s3.bucket", /3 to 63 characters, got 64/],
    ["bucket with a folder", { store: undefined, s3: { bucket: "abc/host" } }, "s3.bucket", /put the folder in s3\.prefix/],
    ["bucket as a number", { store: undefined, s3: { bucket: 12345 } }, "s3.bucket", /expected a string, got a number \(put it in quotes\)/],
    ["endpoint not a URL", { store: undefined, s3: { bucket: "abc", endpoint: "http://a b" } }, "s3.endpoint", /expected an http:\/\/ or https:\/\/ URL, got "http:\/\/a b"/],
    ["endpoint without a scheme", { store: undefined, s3: { bucket: "abc", endpoint: "minio:9000" } }, "s3.endpoint", /got "minio:9000" \(missing http:\/\/ or https:\/\/\?\)/],
    ["endpoint not http", { store: undefined, s3: { bucket: "abc", endpoint: "ftp://x" } }, "s3.endpoint", /got a ftp: URL \("ftp:\/\/x"\)/],
    ["force_path_style not a boolean", { store: undefined, s3: { bucket: "abc", force_path_style: "yes" } }, "s3.force_path_style", /expected true or false, got a string/],
    ["secret as a number", { store: undefined, s3: { bucket: "abc", secret_access_key: 1234 } }, "s3.secret_access_key", /expected a string, got a number/],
    // durations
    ["backup_interval without unit", { backup_interval: 60 }, "backup_interval", /needs a unit, e\.g\. 15m/],
    ["backup_interval zero", { backup_interval: "0m" }, "backup_interval", /longer than 0, got "0m"/],
    ["full_scan_interval bad", { full_scan_interval: "daily" }, "full_scan_interval", /expected a duration .*"daily"/],
    ["min_time_between_run of the wrong type", { min_time_between_run: ["15m"] }, "min_time_between_run", /expected a duration such as 15m, got a list/],
    // schedule
    ["schedule invalid", { schedule: "every night" }, "schedule", /"every night" is not a valid cron expression/],
    ["schedule out of range", { schedule: "61 * * * *" }, "schedule", /not a valid cron expression: .*minute/],
    ["schedule that never fires", { schedule: "0 0 31 2 *" }, "schedule", /never matches any date/],
    // index_path, sizes, index_prefix
    ["index_path empty", { index_path: "" }, "index_path", /must not be empty/],
    ["chunk_size too small", { chunk_size: 255 }, "chunk_size", /must be from 256 B to 16 MiB, got 255/],
    ["chunk_size too large", { chunk_size: "32MiB" }, "chunk_size", /must be from 256 B to 16 MiB, got "32MiB"/],
    ["chunk_size not a size", { chunk_size: "big" }, "chunk_size", /expected a size .*"big"/],
    ["chunk_size of the wrong type", { chunk_size: true }, "chunk_size", /expected a size such as 64MiB, got a boolean/],
    ["blob_size_limit below 1 MiB", { chunk_size: "64KiB", blob_size_limit: "512KiB" }, "blob_size_limit", /at least 1 MiB, got "512KiB"/],
    ["blob_size_limit below 4 × chunk_size", { chunk_size: "4MiB", blob_size_limit: "8MiB" }, "blob_size_limit", /at least 4 × chunk_size = 16 MiB, got "8MiB": a chunk can grow to 4 × chunk_size/],
    ["blob_size_limit not a size", { blob_size_limit: "lots" }, "blob_size_limit", /"lots"/],
    ["index_prefix with ..", { index_prefix: "a/../b" }, "index_prefix", /must not contain "\." or "\.\." segments, got "a\/\.\.\/b"/],
    ["index_prefix only slashes", { index_prefix: "/" }, "index_prefix", /must name a folder/],
    // retention
    ["retention not a mapping", { retention: 7 }, "retention", /expected a mapping, got a number/],
    ["keep_last negative", { retention: { keep_last: -1 } }, "retention.keep_last", /whole number of 0 or more, got -1/],
    ["keep_daily fractional", { retention: { keep_daily: 1.5 } }, "retention.keep_daily", /whole number of 0 or more, got 1.5/],
    ["keep_weekly as a string", { retention: { keep_weekly: "4" } }, "retention.keep_weekly", /whole number of 0 or more, got "4"/],
    ["keep_within without unit", { retention: { keep_within: 30 } }, "retention.keep_within", /needs a unit/],
    // hooks
    ["hooks timeout bad", { hooks: { timeout: "5" } }, "hooks.timeout", /needs a unit/],
    ["hooks command not a string", { hooks: { pre_backup: ["a", "b"] } }, "hooks.pre_backup", /expected a string, got a list/],
    // commands
    ["commands not a list", { commands: { name: "x" } }, "commands", /expected a list, got a mapping/],
    ["command not a mapping", { commands: ["pg_dump"] }, "commands[0]", /expected a mapping, got a string/],
    ["command without run", { commands: [{ name: "a", path: "a.dump" }] }, "commands[0].run", /required/],
    ["command without name", { commands: [{ run: "x", path: "a.dump" }] }, "commands[0].name", /required/],
    ["command without path", { commands: [{ name: "a", run: "x" }] }, "commands[0].path", /required/],
    ["duplicate command names", { commands: [{ name: "a", run: "x", path: "a" }, { name: "a", run: "y", path: "b" }] }, "commands[1].name", /"a" is used by an earlier command/],
    ["duplicate command paths", { commands: [{ name: "a", run: "x", path: "d/a" }, { name: "b", run: "y", path: "./d//a" }] }, "commands[1].path", /"d\/a" is used by an earlier command/],
    ["absolute command path", { commands: [{ name: "a", run: "x", path: "/db/a.dump" }] }, "commands[0].path", /must be relative/],
    ["command path with ..", { commands: [{ name: "a", run: "x", path: "db/../../etc/passwd" }] }, "commands[0].path", /must not contain "\.\."/],
    ["command path with no name", { commands: [{ name: "a", run: "x", path: "./" }] }, "commands[0].path", /must name a file/],
    // status
    ["status without listen", { status: { token: "t" } }, "status.listen", /required/],
    ["status listen without port", { status: { listen: "127.0.0.1" } }, "status.listen", /expected host:port .*got "127\.0\.0\.1"/],
    ["status port too large", { status: { listen: "127.0.0.1:65536" } }, "status.listen", /port from 0 to 65535/],
    ["status port not a number", { status: { listen: "localhost:http" } }, "status.listen", /expected host:port/],
    ["status IPv6 without brackets", { status: { listen: "::1:80" } }, "status.listen", /\[::1\]:9812/],
    ["status listen without host", { status: { listen: ":9812" } }, "status.listen", /expected host:port/],
    ["status token and token_file", { status: { listen: "h:1", token: "a", token_file: "/t" } }, "status.token", /either token or token_file, not both/],
    // alerts and limit_upload
    ["alerts webhook not a URL", { alerts: { webhook: "https://a b" } }, "alerts.webhook", /expected an http:\/\/ or https:\/\/ URL, got something else$/],
    ["alerts webhook without a scheme", { alerts: { webhook: "hooks.example.com/x" } }, "alerts.webhook", /expected an http:\/\/ or https:\/\/ URL \(missing http:\/\/ or https:\/\/\?\)$/],
    ["alerts ntfy not http", { alerts: { ntfy: "ws://ntfy.sh/topic" } }, "alerts.ntfy", /got a ws: URL$/],
    ["alerts stale_after bad", { alerts: { stale_after: "1 day" } }, "alerts.stale_after", /expected a duration/],
    ["alerts repeat_after bad", { alerts: { repeat_after: "daily" } }, "alerts.repeat_after", /expected a duration/],
    // Issue 19 (alerts).
    ["alerts min_severity unknown", { alerts: { min_severity: "critical" } }, "alerts.min_severity", /expected one of info, warning, error, got "critical"/],
    ["slack min_severity unknown", { alerts: { slack: { url: "https://h.example/x", min_severity: "debug" } } }, "alerts.slack.min_severity", /expected one of info, warning, error/],
    ["slack mapping with a misspelt key", { alerts: { slack: { url: "https://h.example/x", min_severty: "info" } } }, "alerts.slack.min_severty", /unknown key \(did you mean min_severity\?\)/],
    ["slack mapping without url", { alerts: { slack: { min_severity: "info" } } }, "alerts.slack.url", /required/],
    ["discord not a URL", { alerts: { discord: "discord.com/api/webhooks/1/t" } }, "alerts.discord", /missing http:\/\/ or https:\/\//],
    ["webhook of the wrong type", { alerts: { webhook: ["https://a.example"] } }, "alerts.webhook", /expected a URL or a mapping \{url, min_severity\}, got a list/],
    ["unknown email key", { alerts: { email: { host: "a", from: "f@x.org", to: ["t@x.org"], pasword: "x" } } }, "alerts.email.pasword", /did you mean password\?/],
    ["email without host", { alerts: { email: { from: "f@x.org", to: ["t@x.org"] } } }, "alerts.email.host", /required/],
    ["email without to", { alerts: { email: { host: "a", from: "f@x.org" } } }, "alerts.email.to", /required/],
    ["email to: a bad second address", { alerts: { email: { host: "a", from: "f@x.org", to: ["t@x.org", "not an address"] } } }, "alerts.email.to[1]", /expected an email address such as ops@example\.com/],
    ["email to: an empty list", { alerts: { email: { host: "a", from: "f@x.org", to: [] } } }, "alerts.email.to", /at least one address/],
    ["email from: not an address", { alerts: { email: { host: "a", from: "vaultik", to: ["t@x.org"] } } }, "alerts.email.from", /expected an email address/],
    ["email port out of range", { alerts: { email: { host: "a", port: 70000, from: "f@x.org", to: ["t@x.org"] } } }, "alerts.email.port", /from 1 to 65535/],
    ["email security unknown", { alerts: { email: { host: "a", security: "ssl", from: "f@x.org", to: ["t@x.org"] } } }, "alerts.email.security", /expected one of starttls, tls, none, got "ssl"/],
    ["email password without user", { alerts: { email: { host: "a", password: "pw-123456", from: "f@x.org", to: ["t@x.org"] } } }, "alerts.email.user", /required with password/],
    ["email user without password", { alerts: { email: { host: "a", user: "u", from: "f@x.org", to: ["t@x.org"] } } }, "alerts.email.password", /required with user/],
    ["email password in clear text", { alerts: { email: { host: "a", security: "none", user: "u", password: "pw-123456", from: "f@x.org", to: ["t@x.org"] } } }, "alerts.email.security", /none would send the password in clear text/],
    ["email password and password_file", { alerts: { email: { host: "a", user: "u", password: "pw-123456", password_file: "/pw", from: "f@x.org", to: ["t@x.org"] } } }, "alerts.email.password", /give either password or password_file, not both/],
    ["email tls_ca_file missing", { alerts: { email: { host: "a", tls_ca_file: "/nope.pem", from: "f@x.org", to: ["t@x.org"] } } }, "alerts.email.tls_ca_file", /cannot read \/nope\.pem: no such file/],
    ["email tls_ca_file not PEM", { alerts: { email: { host: "a", tls_ca_file: "/ca", from: "f@x.org", to: ["t@x.org"] } } }, "alerts.email.tls_ca_file", /no PEM certificate/, { files: { "/ca": "hello" } }],
    ["email tls_insecure not a boolean", { alerts: { email: { host: "a", tls_insecure: "yes", from: "f@x.org", to: ["t@x.org"] } } }, "alerts.email.tls_insecure", /expected true or false/],
    ["limit_upload without /s", { limit_upload: "10MiB" }, "limit_upload", /expected a rate such as 10MiB\/s/],
    ["limit_upload of the wrong type", { limit_upload: { rate: 1 } }, "limit_upload", /expected a rate such as 10MiB\/s, got a mapping/],
  ];
  it.each(cases)("%s", (_name, overrides, key, message, options) => {
    const err = configError(() => parse(overrides, options));
    expect(err.key).toBe(key);
    expect(err.message).toContain(`config: ${key}: `);
    expect(err.message).toMatch(message);
  });

});

describe("parseConfig: the file as a whole", () => {
  it.each([
    ["an empty file", "", /the file is empty/],
    ["only a comment", "# nothing yet\n", /the file is empty/],
    ["a list at top level", "- /etc\n", /expected a mapping of settings .*got a list/],
    ["a bare string", "hello\n", /got a string/],
  ])("%s is refused", (_name, text, message) => {
    const err = configError(() => parseYaml(text));
    expect(err.key).toBe("config");
    expect(err.message).toMatch(message);
  });

  it("reports YAML syntax errors with the file, line and column", () => {
    const err = configError(() => parseYaml(`age_recipient: ${R1}\nsource_dirs: [/etc\nstore: /repo\n`));
    expect(err.key).toBe("config");
    expect(err.message).toMatch(/^config: config: \/cfg\/host\.yml: YAML syntax error at line \d+, column \d+: /);
  });

  it("reports the position of a duplicate key", () => {
    const err = configError(() => parseYaml(`age_recipient: ${R1}\nsource_dirs: [/etc]\nstore: /a\nstore: /b\n`));
    expect(err.message).toMatch(/line 4, column 1: Map keys must be unique/);
  });

  it("reports an undefined YAML alias", () => {
    const err = configError(() => parseYaml(`age_recipient: ${R1}\nsource_dirs: *dirs\nstore: /a\n`));
    expect(err.key).toBe("config");
    expect(err.message).toMatch(/alias/i);
  });

  it("accepts YAML anchors and aliases", () => {
    const c = parseYaml(`age_recipient: ${R1}\nsource_dirs: &dirs [/etc]\nexclude: *dirs\nstore: /a\n`);
    expect(c.exclude).toEqual(["/etc"]);
  });
});

describe("secrets: precedence and files", () => {
  const s3 = (keys: Record<string, unknown>) => ({ store: undefined, s3: { bucket: "abc", ...keys } });
  const secretOf = (c: Config) => (c.store.kind === "s3" ? c.store.secretAccessKey : "not s3");
  const idOf = (c: Config) => (c.store.kind === "s3" ? c.store.accessKeyId : "not s3");
  const env = (vars: Record<string, string>): NodeJS.ProcessEnv => ({ ...NO_ENV, ...vars });
  const files = { "/cfg/secret": "  from-key-file\n", "/run/secrets/s3": "from-env-file\n", "/cfg/id": "id-from-file\n", "/t": "tok-from-file\n" };

  const cases: [string, Record<string, unknown>, (c: Config) => unknown, unknown, NodeJS.ProcessEnv][] = [
    ["the key wins over the environment", s3({ secret_access_key: "inline" }), secretOf, "inline", env({ AWS_SECRET_ACCESS_KEY: "from-env" })],
    ["the _file key (relative to the config, trimmed) wins over the environment", s3({ secret_access_key_file: "secret" }), secretOf, "from-key-file", env({ AWS_SECRET_ACCESS_KEY: "from-env" })],
    ["the environment wins over <VAR>_FILE", s3({}), secretOf, "from-env", env({ AWS_SECRET_ACCESS_KEY: "from-env", AWS_SECRET_ACCESS_KEY_FILE: "/run/secrets/s3" })],
    ["<VAR>_FILE is the last resort", s3({}), secretOf, "from-env-file", env({ AWS_SECRET_ACCESS_KEY_FILE: "/run/secrets/s3" })],
    ["an empty environment variable counts as unset", s3({}), secretOf, "from-env-file", env({ AWS_SECRET_ACCESS_KEY: "", AWS_SECRET_ACCESS_KEY_FILE: "/run/secrets/s3" })],
    ["nothing anywhere leaves the secret unset", s3({}), secretOf, undefined, NO_ENV],
    ["access_key_id from the environment", s3({}), idOf, "AKIAENV", env({ AWS_ACCESS_KEY_ID: "AKIAENV" })],
    ["access_key_id_file", s3({ access_key_id_file: "/cfg/id" }), idOf, "id-from-file", env({ AWS_ACCESS_KEY_ID: "AKIAENV" })],
    ["status token inline", { status: { listen: "localhost:1", token: "tok" } }, (c) => c.status?.token, "tok", NO_ENV],
    ["status token_file", { status: { listen: "localhost:1", token_file: "/t" } }, (c) => c.status?.token, "tok-from-file", NO_ENV],
    // Issue 19: VAULTIK_STATUS_TOKEN is also the token's derived variable, and a variable overrides the file.
    ["VAULTIK_STATUS_TOKEN over the inline token", { status: { listen: "localhost:1", token: "tok" } }, (c) => c.status?.token, "env", env({ VAULTIK_STATUS_TOKEN: "env" })],
    ["VAULTIK_STATUS_TOKEN over token_file", { status: { listen: "localhost:1", token_file: "/t" } }, (c) => c.status?.token, "env", env({ VAULTIK_STATUS_TOKEN: "env" })],
    ["status token from VAULTIK_STATUS_TOKEN", { status: { listen: "localhost:1" } }, (c) => c.status?.token, "env", env({ VAULTIK_STATUS_TOKEN: "env" })],
    ["status token from VAULTIK_STATUS_TOKEN_FILE", { status: { listen: "localhost:1" } }, (c) => c.status?.token, "tok-from-file", env({ VAULTIK_STATUS_TOKEN_FILE: "/t" })],
    ["no status section: the token variable is ignored", {}, (c) => c.status, undefined, env({ VAULTIK_STATUS_TOKEN: "env" })],
    ["no s3 section: AWS variables are ignored", {}, (c) => c.store, { kind: "fs", path: "/repo" }, env({ AWS_SECRET_ACCESS_KEY: "x" })],
    ["recipient from VAULTIK_AGE_RECIPIENT", { age_recipient: undefined }, (c) => c.recipientKeys, [R1, R2], env({ VAULTIK_AGE_RECIPIENT: `${R1}, ${R2}` })],
    ["VAULTIK_AGE_RECIPIENT overrides the file's recipient (issue 19)", {}, (c) => c.recipientKeys, [R2], env({ VAULTIK_AGE_RECIPIENT: R2 })],
    ["recipient from VAULTIK_AGE_RECIPIENT_FILE", { age_recipient: undefined }, (c) => c.recipientKeys, [R2], env({ VAULTIK_AGE_RECIPIENT_FILE: "/r" })],
  ];
  it.each(cases)("%s", (_name, overrides, pick, expected, environment) => {
    expect(pick(parse(overrides, { env: environment, files: { ...files, "/r": `${R2}\n` } }))).toEqual(expected);
  });

  it.each([
    ["both a key and its _file", s3({ secret_access_key: "a", secret_access_key_file: "/x" }), NO_ENV, "s3.secret_access_key", /either secret_access_key or secret_access_key_file, not both/],
    ["both access_key_id and its _file", s3({ access_key_id: "a", access_key_id_file: "/x" }), NO_ENV, "s3.access_key_id", /not both/],
    ["an unreadable _file", s3({ secret_access_key_file: "missing" }), NO_ENV, "s3.secret_access_key_file", /cannot read \/cfg\/missing: no such file/],
    ["an empty _file", s3({ secret_access_key_file: "/empty" }), NO_ENV, "s3.secret_access_key_file", /\/empty is empty/],
    ["an unreadable <VAR>_FILE", s3({}), env({ AWS_SECRET_ACCESS_KEY_FILE: "/nope" }), "AWS_SECRET_ACCESS_KEY_FILE", /cannot read \/nope: no such file/],
    ["an unreadable token_file", { status: { listen: "h:1", token_file: "/nope" } }, NO_ENV, "status.token_file", /cannot read \/nope/],
    ["an unreadable VAULTIK_STATUS_TOKEN_FILE", { status: { listen: "h:1" } }, env({ VAULTIK_STATUS_TOKEN_FILE: "/nope" }), "VAULTIK_STATUS_TOKEN_FILE", /cannot read \/nope/],
    ["no recipient anywhere", { age_recipient: undefined }, NO_ENV, "age_recipient", /required.*VAULTIK_AGE_RECIPIENT/],
    ["a private key in VAULTIK_AGE_RECIPIENT", { age_recipient: undefined }, env({ VAULTIK_AGE_RECIPIENT: PRIVATE_KEY }), "VAULTIK_AGE_RECIPIENT", /private key/],
  ] as const)("%s is refused", (_name, overrides, environment, key, message) => {
    const err = configError(() => parse(overrides, { env: environment, files: { "/empty": " \n" } }));
    expect(err.key).toBe(key);
    expect(err.message).toMatch(message);
  });

  it("never puts a secret into an error message", () => {
    const SECRET = "TOPSECRET-9f8e7d6c5b4a";
    const WEBHOOK = `https://hooks.example.com/services/${SECRET}`;
    const secretFiles = { "/s": `${SECRET}\n`, "/k": `${PRIVATE_KEY}\n` };
    // Not VAULTIK_STATUS_TOKEN: it would replace the file's token (test/config-env.test.ts covers secrets in variables).
    const secretEnv = env({ AWS_SECRET_ACCESS_KEY: SECRET, AWS_ACCESS_KEY_ID: SECRET });
    // Each config holds the secret somewhere and has one mistake elsewhere, or in the secret's
    // own key, so the error is raised while the secret is in hand.
    const broken: Record<string, unknown>[] = [
      s3({ secret_access_key: SECRET, bucket: "ab" }),
      s3({ secret_access_key: SECRET, secret_access_key_file: "/s" }),
      s3({ secret_access_key_file: "/s", endpoint: "ftp://x" }),
      s3({ access_key_id: SECRET, secret_acces_key: "x" }),
      s3({ secret_access_key: SECRET, force_path_style: "yes" }),
      { ...s3({ secret_access_key: SECRET }), chunk_size: "1GiB" },
      { status: { listen: "nope", token: SECRET } },
      { status: { listen: "h:1", token: SECRET, token_file: "/s" } },
      { status: { listen: "h:1", token_file: "/s" }, limit_upload: "fast" },
      { alerts: { webhook: WEBHOOK.replace("https", "ftp") } },
      { alerts: { webhook: WEBHOOK.replace("https://", "") } },
      { alerts: { ntfy: `mailto:${SECRET}@example.com` } },
      { alerts: { slack: { url: WEBHOOK.replace("https://", ""), min_severity: "info" } } },
      { alerts: { email: { host: "a", user: "u", password: SECRET, from: "f@x.org", to: ["t@x.org", "bad"] } } },
      { alerts: { email: { host: "a", user: "u", password_file: "/s", security: "none", from: "f@x.org", to: ["t@x.org"] } } },
      { commands: [{ name: "db", run: `PGPASSWORD=${SECRET} pg_dump`, path: "/abs" }] },
      { commands: [{ name: "db", run: `PGPASSWORD=${SECRET} pg_dump`, path: "x", extra: 1 }] },
      { age_recipient: undefined, age_recipient_file: "/k" },
      { age_recipient: PRIVATE_KEY },
      { age_recipient: [R1, PRIVATE_KEY] },
    ];
    for (const overrides of broken) {
      const err = configError(() => parse(overrides, { env: secretEnv, files: secretFiles }));
      for (const text of [err.message, String(err.cause ?? "")]) {
        expect(text).not.toContain(SECRET);
        expect(text).not.toContain(PRIVATE_KEY);
        expect(text.toLowerCase()).not.toContain(PRIVATE_KEY.toLowerCase().slice(15, 40));
      }
    }
    // A YAML syntax error on a line holding a secret does not quote the line.
    const err = configError(() => parseYaml(`s3:\n  secret_access_key: ${SECRET}: oops\n`));
    expect(err.message).not.toContain(SECRET);
  });
});

describe("loadConfig", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "vaultik-config-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reads the file, resolving relative paths and secret files against its directory", async () => {
    await writeFile(join(dir, "secret"), "from-a-real-file\n");
    await writeFile(
      join(dir, "office.yaml"),
      stringify({ age_recipient: R1, source_dirs: ["data"], s3: { bucket: "abc", secret_access_key_file: "secret" } }),
    );
    const c = await loadConfig(join(dir, "office.yaml"), { HOME: "/home/u" });
    expect(c.path).toBe(join(dir, "office.yaml"));
    expect(c.sourceDirs).toEqual([join(dir, "data")]);
    expect(c.indexPath).toEqual(defaultIndex("/home/u/.local/state/vaultik", "office"));
    expect(c.store).toEqual({ kind: "s3", bucket: "abc", prefix: "", secretAccessKey: "from-a-real-file" });
  });

  it("names the path of a missing config file", async () => {
    const missing = join(dir, "missing.yml");
    const err = await loadConfig(missing, NO_ENV).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).key).toBe("config");
    expect((err as ConfigError).message).toBe(`config: config: cannot read ${missing}: no such file`);
  });

  it("names a directory given as the config file", async () => {
    await expect(loadConfig(dir, NO_ENV)).rejects.toThrow(`cannot read ${dir}: is a directory`);
  });
});

describe("describeConfigKeys", () => {
  const keys = describeConfigKeys();

  it("is the CONFIG_KEYS data, with unique keys and a description each", () => {
    expect(keys).toBe(CONFIG_KEYS);
    expect(new Set(keys.map((k) => k.key)).size).toBe(keys.length);
    for (const k of keys) expect(k.description.length, k.key).toBeGreaterThan(10);
  });

  it("lists exactly the keys the parser accepts at the top level", () => {
    const top = [...new Set(keys.map((k) => k.key.split(/[.[]/)[0]))].sort();
    expect(top).toEqual(
      [
        "age_recipient", "age_recipient_file", "alerts", "backup_interval", "blob_size_limit", "chunk_size", "commands",
        "databases", "exclude", "full_scan_interval", "hooks", "index_path", "index_prefix", "limit_upload", "memory_limit", "min_time_between_run",
        "retention", "s3", "schedule", "serve", "source_dirs", "status", "store",
        "apps", "hostname",
      ].sort(),
    );
  });

  it("documents the defaults the parser applies", () => {
    const documented = Object.fromEntries(keys.map((k) => [k.key, k.default]));
    const c = parse({ hooks: {}, alerts: {} });
    expect(parseDuration(documented["backup_interval"] ?? "", "x")).toBe(c.backupInterval);
    expect(parseDuration(documented["full_scan_interval"] ?? "", "x")).toBe(c.fullScanInterval);
    expect(parseDuration(documented["min_time_between_run"] ?? "", "x")).toBe(c.minTimeBetweenRun);
    expect(parseDuration(documented["hooks.timeout"] ?? "", "x")).toBe(c.hooks?.timeout);
    expect(parseDuration(documented["alerts.stale_after"] ?? "", "x")).toBe(c.alerts?.staleAfter);
    expect(parseDuration(documented["alerts.repeat_after"] ?? "", "x")).toBe(c.alerts?.repeatAfter);
    expect(parseSize(documented["chunk_size"] ?? "", "x")).toBe(c.chunkSize);
    expect(parseSize(documented["blob_size_limit"] ?? "", "x")).toBe(c.blobSizeLimit);
    expect(documented["index_prefix"]).toBe(c.indexPrefix);
  });
});
