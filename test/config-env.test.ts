import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { CONFIG_KEYS, loadConfig, parseConfig, type Config } from "../src/config/index.js";
import { envVariable } from "../src/config/env.js";
import { encodeRecipient } from "../src/crypto/keys.js";
import { ConfigError } from "../src/errors.js";
import { configError } from "./helpers/config-error.js";
import { useTempDirs } from "./helpers/temp.js";

// Issue 19, container-first config: every key from a VAULTIK_* variable derived from its name,
// laid over the YAML before the one strict check.

const R1 = encodeRecipient(Buffer.alloc(32, 1));
const R2 = encodeRecipient(Buffer.alloc(32, 2));
const HOME = { HOME: "/home/u" };
const ENV_ONLY = { ...HOME, VAULTIK_AGE_RECIPIENT: R1, VAULTIK_SOURCE_DIRS: "/data,/etc", VAULTIK_STORE: "/repo" };
const BASE_FILE = stringify({ age_recipient: R1, source_dirs: ["/data"], store: "/repo" });
const tempDir = useTempDirs("vaultik-config-env-");

function files(map: Record<string, string>): (path: string) => string {
  return (path) => {
    const content = map[path];
    if (content === undefined) throw Object.assign(new Error("ENOENT"), { code: "ENOENT" });
    return content;
  };
}

function withFile(text: string, env: NodeJS.ProcessEnv, readFile = files({})): Config {
  return parseConfig(text, { path: "/cfg/host.yml", env: { ...HOME, ...env }, readFile });
}

describe("variable names", () => {
  it("derives VAULTIK_ + the upper-case key, dots to underscores", () => {
    expect(envVariable("s3.bucket")).toBe("VAULTIK_S3_BUCKET");
    expect(envVariable("retention.keep_daily")).toBe("VAULTIK_RETENTION_KEEP_DAILY");
    expect(envVariable("source_dirs")).toBe("VAULTIK_SOURCE_DIRS");
    expect(envVariable("s3.secret_access_key_file")).toBe("VAULTIK_S3_SECRET_ACCESS_KEY_FILE");
    // List items and wildcard maps live in their owner's one variable.
    expect(envVariable("commands[].run")).toBe("VAULTIK_COMMANDS");
    expect(envVariable("serve.hosts.*.stale_after")).toBe("VAULTIK_SERVE_HOSTS");
  });
});

describe("environment only", () => {
  it("builds the whole config from variables, paths against the working directory", async () => {
    const c = await loadConfig(undefined, { ...ENV_ONLY, VAULTIK_SOURCE_DIRS: "/data, rel", VAULTIK_RETENTION_KEEP_DAILY: "7", VAULTIK_S3_FORCE_PATH_STYLE: "true" });
    expect(c.recipientKeys).toEqual([R1]);
    expect(c.sourceDirs).toEqual(["/data", join(process.cwd(), "rel")]);
    expect(c.store).toEqual({ kind: "fs", path: "/repo" });
    expect(c.retention).toEqual({ keepDaily: 7 });
    // s3.* variables without VAULTIK_S3_BUCKET make no s3 section (VAULTIK_S3_ENDPOINT is also the CLI's).
    expect(c.path).toBeUndefined();
  });

  it("has a stable default index path of its own, by repository", async () => {
    const a = await loadConfig(undefined, ENV_ONLY);
    const b = await loadConfig(undefined, ENV_ONLY);
    const other = await loadConfig(undefined, { ...ENV_ONLY, VAULTIK_STORE: "/other" });
    expect(a.indexPath).toBe(b.indexPath);
    expect(a.indexPath).toMatch(/^\/home\/u\/\.local\/state\/vaultik\/env-[0-9a-f]{12}\.sqlite$/);
    expect(other.indexPath).not.toBe(a.indexPath);
  });

  it("reads list-of-mapping keys and wildcard maps as YAML/JSON flow text", async () => {
    const c = await loadConfig(undefined, {
      ...ENV_ONLY,
      VAULTIK_COMMANDS: '[{name: db, run: "pg_dump app", path: db.dump}]',
      VAULTIK_SERVE_HOSTS: '{"laptop": {"stale_after": "8d"}}',
      VAULTIK_S3_BUCKET: "backups",
      VAULTIK_STORE: "",
    });
    expect(c.commands).toEqual([{ name: "db", run: "pg_dump app", path: "db.dump" }]);
    expect(c.serve?.hosts.get("laptop")).toBe(8 * 24 * 3600 * 1000);
    expect(c.store).toMatchObject({ kind: "s3", bucket: "backups" });
  });

  it("names the variable of a missing required key", async () => {
    const { VAULTIK_SOURCE_DIRS: _, ...noSources } = ENV_ONLY;
    await expect(loadConfig(undefined, noSources)).rejects.toThrow(/source_dirs: required: .*; without a config file, set VAULTIK_SOURCE_DIRS/);
    const { VAULTIK_STORE: __, ...noStore } = ENV_ONLY;
    await expect(loadConfig(undefined, noStore)).rejects.toThrow(/store: required: .*; without a config file, set VAULTIK_STORE/);
  });

  it("refuses a run with no file and no variable, saying what to do", async () => {
    const err = await loadConfig(undefined, HOME).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/no config file and no VAULTIK_\* variables/);
  });
});

describe("beside a file", () => {
  it("a variable overrides the file's key", () => {
    const c = withFile(BASE_FILE, { VAULTIK_STORE: "/elsewhere", VAULTIK_SOURCE_DIRS: "/a,/b", VAULTIK_AGE_RECIPIENT: `${R1},${R2}` });
    expect(c.store).toEqual({ kind: "fs", path: "/elsewhere" });
    expect(c.sourceDirs).toEqual(["/a", "/b"]);
    expect(c.recipientKeys).toEqual([R1, R2]);
    expect(c.path).toBe("/cfg/host.yml");
  });

  it("VAULTIK_S3_BUCKET replaces the file's store, and a *_FILE variable the file's secret", () => {
    const file = stringify({ age_recipient: R1, source_dirs: ["/data"], s3: { bucket: "old", secret_access_key: "inline" } });
    const c = withFile(file, { VAULTIK_S3_SECRET_ACCESS_KEY_FILE: "/run/secrets/s3" }, files({ "/run/secrets/s3": "from-secret\n" }));
    expect(c.store).toMatchObject({ kind: "s3", bucket: "old", secretAccessKey: "from-secret" });
    const moved = withFile(BASE_FILE, { VAULTIK_S3_BUCKET: "newbucket" });
    expect(moved.store).toMatchObject({ kind: "s3", bucket: "newbucket" });
  });

  it("the value variable replaces the file's *_file key", () => {
    const file = stringify({ age_recipient: R1, source_dirs: ["/data"], store: "/repo", status: { listen: "127.0.0.1:1", token_file: "/t" } });
    expect(withFile(file, { VAULTIK_STATUS_TOKEN: "from-env" }).status?.token).toBe("from-env");
  });

  it("keeps the older fallbacks below the derived variables", () => {
    const file = stringify({ age_recipient: R1, source_dirs: ["/data"], s3: { bucket: "abc" } });
    const c = withFile(file, { AWS_SECRET_ACCESS_KEY: "legacy", AWS_ACCESS_KEY_ID: "AKIALEGACY" });
    expect(c.store).toMatchObject({ secretAccessKey: "legacy", accessKeyId: "AKIALEGACY" });
    const both = withFile(file, { AWS_SECRET_ACCESS_KEY: "legacy", VAULTIK_S3_SECRET_ACCESS_KEY: "derived" });
    expect(both.store).toMatchObject({ secretAccessKey: "derived" });
  });
});

describe("alert channels", () => {
  it("a channel variable takes a URL, or flow text with its own min_severity", () => {
    const slack = "https://hooks.slack.com/services/T/B/x";
    const plain = withFile(BASE_FILE, { VAULTIK_ALERTS_SLACK: slack, VAULTIK_ALERTS_MIN_SEVERITY: "warning" });
    expect(plain.alerts?.slack).toEqual({ url: slack, minSeverity: "warning" });
    const own = withFile(BASE_FILE, { VAULTIK_ALERTS_SLACK: `{url: "${slack}", min_severity: error}`, VAULTIK_ALERTS_MIN_SEVERITY: "warning" });
    expect(own.alerts?.slack).toEqual({ url: slack, minSeverity: "error" });
  });

  it("a bad channel mapping names the variable and the key, not the URL", () => {
    const err = configError(() => withFile(BASE_FILE, { VAULTIK_ALERTS_DISCORD: "{url: https://discord.com/api/webhooks/1/SECRETTOKEN, min_severity: loud}" }));
    expect(err.key).toBe("VAULTIK_ALERTS_DISCORD");
    expect(err.message).toMatch(/min_severity/);
    expect(err.message).not.toContain("SECRETTOKEN");
  });
});

describe("errors name the variable", () => {
  it.each([
    ["a count that is not a number", { VAULTIK_RETENTION_KEEP_DAILY: "seven" }, "VAULTIK_RETENTION_KEEP_DAILY", /expected a whole number of 0 or more, got "seven"/],
    ["a boolean that is not one", { VAULTIK_S3_BUCKET: "abc", VAULTIK_S3_FORCE_PATH_STYLE: "maybe" }, "VAULTIK_S3_FORCE_PATH_STYLE", /expected true or false/],
    ["a bad duration", { VAULTIK_BACKUP_INTERVAL: "soon" }, "VAULTIK_BACKUP_INTERVAL", /duration/],
    ["a bad item in a list variable", { VAULTIK_COMMANDS: "[{name: a, run: x, path: /abs}]" }, "VAULTIK_COMMANDS", /commands\[0\]\.path: must be relative/],
    ["flow text that is not YAML", { VAULTIK_COMMANDS: "[{name: a" }, "VAULTIK_COMMANDS", /not valid YAML/],
    ["a misspelt variable", { VAULTIK_RETENTION_KEEP_DAYLY: "7" }, "VAULTIK_RETENTION_KEEP_DAYLY", /unknown variable \(did you mean VAULTIK_RETENTION_KEEP_DAILY\?\)/],
    ["a variable inside a section with no such key", { VAULTIK_S3_BUKKIT_NAME: "x" }, "VAULTIK_S3_BUKKIT_NAME", /unknown variable/],
    ["both a secret and its _FILE", { VAULTIK_S3_BUCKET: "abc", VAULTIK_S3_SECRET_ACCESS_KEY: "x", VAULTIK_S3_SECRET_ACCESS_KEY_FILE: "/s" }, "VAULTIK_S3_SECRET_ACCESS_KEY", /not both/],
  ] as const)("%s", (_name, vars, variable, message) => {
    const err = configError(() => withFile(BASE_FILE, vars));
    expect(err.key).toBe(variable);
    expect(err.message).toMatch(message);
  });

  it("never quotes a secret from a variable", () => {
    const SECRET = "TOPSECRET-1234abcd";
    const broken: Record<string, string>[] = [
      { VAULTIK_S3_BUCKET: "abc", VAULTIK_S3_SECRET_ACCESS_KEY: SECRET, VAULTIK_S3_SECRET_ACCESS_KEY_FILE: SECRET },
      { VAULTIK_STATUS_LISTEN: "nope", VAULTIK_STATUS_TOKEN: SECRET },
      { VAULTIK_STATUS_LISTEN: "h:1", VAULTIK_STATUS_TOKEN: `  ` , VAULTIK_STATUS_TOKEN_FILE: SECRET },
      { VAULTIK_COMMANDS: `[{name: db, run: "PGPASSWORD=${SECRET} pg_dump", path: /abs}]` },
      { VAULTIK_COMMANDS: `[{name: db, run: "PGPASSWORD=${SECRET} pg_dump", path: x` },
      { VAULTIK_ALERTS_WEBHOOK: `ftp://hooks.example.com/${SECRET}` },
    ];
    for (const vars of broken) {
      const err = configError(() => withFile(BASE_FILE, vars));
      expect(err.message).not.toContain(SECRET);
      expect(String(err.cause ?? "")).not.toContain(SECRET);
    }
  });

  it("leaves the variables the CLI and hooks use alone", () => {
    const vars = {
      VAULTIK_PRIVATE_KEY: "x", VAULTIK_PRIVATE_KEY_FILE: "/k", VAULTIK_S3_ENDPOINT: "http://127.0.0.1:1", VAULTIK_MAX_SNAPSHOT_DB: "8GiB",
      VAULTIK_CACHE_DIR: "/c", VAULTIK_CACHE_SIZE: "1GiB", VAULTIK_CONFIG: "/x.yml", VAULTIK_STATUS: "success", VAULTIK_RUN: "3",
      VAULTIK_SNAPSHOT_ID: "h-1", VAULTIK_ERROR: "", VAULTIK_S3_RETRY_BASE_MS: "1", VAULTIK_S3_TIMEOUT_MS: "9",
      VAULTIK_TEST_CRASH_AT: "x", VAULTIK_TEST_PG_URL: "postgres://u:p@h/db",
    };
    expect(withFile(BASE_FILE, vars).store).toEqual({ kind: "fs", path: "/repo" });
  });
});

/** A valid value for each variable; kinds decide unless a key needs a particular form. */
const SAMPLES: Record<string, string> = {
  age_recipient: R2,
  age_recipient_file: "/r",
  store: "/other-repo",
  "s3.endpoint": "http://127.0.0.1:9000",
  "s3.bucket": "samplebucket",
  "s3.force_path_style": "false",
  schedule: "0 3 * * *",
  "status.listen": "127.0.0.1:0",
  "alerts.webhook": "https://example.com/hook",
  "alerts.ntfy": "https://ntfy.sh/topic",
  "alerts.slack": "https://hooks.slack.com/services/T/B/x",
  "alerts.discord": "https://discord.com/api/webhooks/1/t",
  "alerts.min_severity": "warning",
  "alerts.email.min_severity": "error",
  "alerts.email.security": "tls",
  "alerts.email.from": "other@example.org",
  "alerts.email.to": "a@example.org,b@example.org",
  "retention.keep_within": "30d",
  index_prefix: "meta/",
  chunk_size: "2MiB",
  blob_size_limit: "32MiB",
  memory_limit: "512MiB",
  limit_upload: "10MiB/s",
  commands: "[{name: db, run: 'echo x', path: db.dump}]",
  "serve.hosts": "{laptop: {stale_after: 8d}}",
};
const BY_KIND: Record<string, string> = { count: "3", list: "/sample-a,/sample-b", boolean: "true", string: "/sample" };
/** Duration keys by their names (the table has no duration kind: their text is read as written). */
const DURATION = /(_interval|_after|timeout|_between_run)$/;

describe("every key has a variable", () => {
  // Keys others add later are covered here without a change: the loop is over CONFIG_KEYS.
  const own = CONFIG_KEYS.filter((k) => !/\[\]|\.\*/.test(k.key) && !CONFIG_KEYS.some((c) => c.key.startsWith(`${k.key}.`)));
  // Every section whose keys are optional is in the file, so each of its variables has a section to change.
  const channel = (url: string) => ({ url });
  const alerts = {
    webhook: channel("https://a.example/h"), ntfy: channel("https://a.example/n"), slack: channel("https://a.example/s"), discord: channel("https://a.example/d"),
    email: { host: "smtp.example.org", user: "u", password: "file-pw-123", from: "f@example.org", to: ["t@example.org"] },
  };
  const file = stringify({ age_recipient: R1, source_dirs: ["/data"], s3: { bucket: "abc", region: "r" }, status: { listen: "127.0.0.1:1" }, alerts });
  const base = withFile(file, {}, files({ "/r": `${R2}\n`, "/sample": "from-file\n" }));

  it.each(own.map((k) => [k.key, k] as const))("%s", (key, info) => {
    const variable = envVariable(key);
    expect(variable).toBe(`VAULTIK_${key.toUpperCase().replaceAll(".", "_")}`);
    const value = SAMPLES[key] ?? (DURATION.test(key) ? "7m" : BY_KIND[info.kind ?? "string"] ?? "/sample");
    let c: Config;
    try {
      c = withFile(file, { [variable]: value }, files({ "/r": `${R2}\n`, "/sample": "from-file\n" }));
    } catch (err) {
      // A key added since SAMPLES was written may refuse the generic sample: then the refusal
      // must come from its variable, which shows the variable reached the parser. Known keys
      // must take their sample.
      if (key in SAMPLES || DURATION.test(key) || info.kind !== undefined || !(err instanceof ConfigError)) throw err;
      expect(err.key).toBe(variable);
      return;
    }
    expect(JSON.stringify(c, mapsToo), `${variable}=${value} changed nothing`).not.toBe(JSON.stringify(base, mapsToo));
  });

  it("sub-keys of lists and maps name their owner's variable", () => {
    for (const k of CONFIG_KEYS.filter((c) => /\[\]|\.\*/.test(c.key))) {
      const owner = k.key.split(/\[\]|\.\*/)[0]!;
      expect(CONFIG_KEYS.some((c) => c.key === owner), k.key).toBe(true);
      expect(envVariable(k.key)).toBe(envVariable(owner));
    }
  });
});

function mapsToo(_key: string, value: unknown): unknown {
  return value instanceof Map ? [...value] : value;
}

describe("loadConfig with a file and variables", () => {
  it("reads the file and lays the variables over it", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, "v.yml"), BASE_FILE);
    const c = await loadConfig(join(dir, "v.yml"), { ...HOME, VAULTIK_EXCLUDE: "*.log,tmp/" });
    expect(c.exclude).toEqual(["*.log", "tmp/"]);
    expect(c.path).toBe(join(dir, "v.yml"));
  });
});
