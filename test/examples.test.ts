import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { bech32 } from "@scure/base";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseDocument } from "yaml";
import { parseConfig } from "../src/config/index.js";

// The files in examples/ are what operators copy verbatim onto servers, so a typo in them is a
// bug that ships. These tests check that each one is well-formed for the tool that reads it
// (systemd, YAML, cron, Docker) and still says what the docs promise; the configs also go
// through vaultik's own loader.

const EXAMPLES = fileURLToPath(new URL("../examples/", import.meta.url));
const AGE_SPEC_EXAMPLE_KEY = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

function example(name: string): Promise<string> {
  return readFile(join(EXAMPLES, name), "utf8");
}

/** Parses YAML strictly: any error or warning (duplicate key, bad indentation...) fails. */
async function yamlExample(name: string): Promise<Record<string, unknown>> {
  const doc = parseDocument(await example(name), { prettyErrors: true, uniqueKeys: true });
  expect(doc.errors.map(String), `${name}: YAML errors`).toEqual([]);
  expect(doc.warnings.map(String), `${name}: YAML warnings`).toEqual([]);
  const value: unknown = doc.toJS();
  expect(value, `${name}: top level must be a mapping`).toBeTypeOf("object");
  return value as Record<string, unknown>;
}

/** obj.a.b.c for plain parsed YAML, without a cast at every step. */
function at(obj: unknown, ...keys: (string | number)[]): unknown {
  let cur = obj;
  for (const k of keys) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<string | number, unknown>)[k];
  }
  return cur;
}

// ---------------------------------------------------------------------------------------------
// systemd unit

/** Key → values (a key may repeat) of one [Section] of a unit file; comments and blanks skipped. */
function unitSection(text: string, section: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      current = header[1]!;
      continue;
    }
    if (current !== section) continue;
    const eq = line.indexOf("=");
    if (eq < 0) continue;
    const key = line.slice(0, eq).trim();
    out.set(key, [...(out.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return out;
}

/**
 * Finds systemd-analyze or fails with what to do. Not a skip: a skipped verify would let a
 * broken unit through CI unnoticed, and CI installs systemd for this test.
 */
function systemdAnalyze(): string {
  for (const candidate of ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]) {
    if (existsSync(candidate)) return candidate;
  }
  const probe = spawnSync("systemd-analyze", ["--version"], { encoding: "utf8" });
  if (probe.status === 0) return "systemd-analyze";
  throw new Error(
    "systemd-analyze not found: install the `systemd` package (e.g. `apt-get install -y systemd`) to verify examples/vaultik.service",
  );
}

// Lines systemd-analyze prints for problems it tolerates. It exits 0 on an unknown key or an
// unparsable value ("Unknown key 'X' in section [Service], ignoring.", "Failed to parse ...,
// ignoring"), so the exit code alone proves little; the negative control below shows these
// patterns do catch such lines on the installed systemd.
const VERIFY_PROBLEM = /unknown|failed|ignoring|not executable|invalid|deprecated/i;

describe("examples/vaultik.service", () => {
  let unit: string;
  let service: Map<string, string[]>;
  let work: string;

  beforeAll(async () => {
    unit = await example("vaultik.service");
    service = unitSection(unit, "Service");
    work = await mkdtemp(join(tmpdir(), "vaultik-examples-"));
  });

  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  /**
   * Copies the unit into `dir` with ExecStart pointing at a stand-in `vaultik` script there:
   * verify checks that the ExecStart binary exists and is executable, and vaultik is not
   * installed in /usr/bin on a development machine or in CI. Everything else is the file as
   * shipped. `User=vaultik` stays as is: verify does not look users up (checked on systemd 252,
   * where a missing user produces no message at all), so no DynamicUser= substitute is needed.
   */
  async function verifiableCopy(dir: string, extra = ""): Promise<string> {
    const fake = join(dir, "vaultik");
    await writeFile(fake, "#!/bin/sh\nexit 0\n");
    await chmod(fake, 0o755);
    const execStart = /^ExecStart=\/usr\/bin\/vaultik /m;
    expect(unit, "ExecStart must start with /usr/bin/vaultik for the test to rewrite it").toMatch(execStart);
    let text = unit.replace(execStart, `ExecStart=${fake} `);
    if (extra) text = text.replace(/^\[Service\]$/m, `[Service]\n${extra}`);
    const file = join(dir, "vaultik.service");
    await writeFile(file, text);
    return file;
  }

  function verify(file: string): { status: number | null; stderr: string; stdout: string } {
    const r = spawnSync(systemdAnalyze(), ["verify", "--man=no", file], {
      encoding: "utf8",
      // No systemd instance is needed (or running in containers); keep the output in English.
      env: { ...process.env, LC_ALL: "C", SYSTEMD_LOG_COLOR: "0", SYSTEMD_PAGER: "" },
      timeout: 60_000,
    });
    if (r.error) throw r.error;
    return { status: r.status, stderr: r.stderr, stdout: r.stdout };
  }

  it("passes `systemd-analyze verify` with no warnings", async () => {
    const file = await verifiableCopy(work);
    const r = verify(file);
    const problems = `${r.stderr}\n${r.stdout}`.split("\n").filter((l) => VERIFY_PROBLEM.test(l));
    expect(problems, r.stderr).toEqual([]);
    expect(r.status, r.stderr).toBe(0);
  });

  it("negative control: the warning check catches a bad key that verify exits 0 on", async () => {
    const dir = await mkdtemp(join(work, "bad-"));
    const file = await verifiableCopy(dir, "ProtectSystm=strict\nProtectHome=maybe");
    const r = verify(file);
    const problems = r.stderr.split("\n").filter((l) => VERIFY_PROBLEM.test(l));
    expect(problems.join("\n")).toMatch(/ProtectSystm/);
    expect(problems.join("\n")).toMatch(/maybe/);
  });

  // The sandbox the docs promise. Exact values: a weaker value (ProtectSystem=full, an extra
  // capability) is a regression even though it still verifies.
  const directives: [string, string][] = [
    ["Type", "simple"],
    ["ExecStart", "/usr/bin/vaultik backup /etc/vaultik/vaultik.yml --daemon"],
    ["ExecReload", "/bin/kill -HUP $MAINPID"],
    ["KillSignal", "SIGTERM"],
    ["TimeoutStopSec", "5min"],
    ["Restart", "on-failure"],
    ["Environment", "NODE_ENV=production"],
    ["User", "vaultik"],
    ["AmbientCapabilities", "CAP_DAC_READ_SEARCH"],
    ["CapabilityBoundingSet", "CAP_DAC_READ_SEARCH"],
    ["NoNewPrivileges", "yes"],
    ["UMask", "0077"],
    ["ProtectSystem", "strict"],
    ["ReadWritePaths", "/var/lib/vaultik"],
    ["StateDirectory", "vaultik"],
    ["ProtectHome", "read-only"],
    ["PrivateTmp", "yes"],
    ["PrivateDevices", "yes"],
    ["ProtectKernelTunables", "yes"],
    ["ProtectKernelModules", "yes"],
    ["ProtectControlGroups", "yes"],
    ["RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"],
    ["LockPersonality", "yes"],
    ["RestrictRealtime", "yes"],
    ["SystemCallFilter", "@system-service"],
  ];

  it.each(directives)("[Service] has %s=%s exactly once", (key, value) => {
    expect(service.get(key)).toEqual([value]);
  });

  it("is writable nowhere but the index directory and gains no capability beyond reading", () => {
    const rw = [...(service.get("ReadWritePaths") ?? []), ...(service.get("BindPaths") ?? [])];
    expect(rw).toEqual(["/var/lib/vaultik"]);
    // DynamicUser would make StateDirectory a private, remapped directory and the index path
    // would have to change with it; the unit uses a fixed user on purpose.
    expect(service.has("DynamicUser")).toBe(false);
    // V8 cannot run under MemoryDenyWriteExecute; guard against someone "hardening" it in.
    expect(service.get("MemoryDenyWriteExecute") ?? []).not.toContain("yes");
  });

  it("is enabled into multi-user.target and waits for the network", () => {
    expect(unitSection(unit, "Install").get("WantedBy")).toEqual(["multi-user.target"]);
    expect(unitSection(unit, "Unit").get("After")?.join(" ")).toContain("network-online.target");
  });
});

// ---------------------------------------------------------------------------------------------
// YAML configs and compose

describe("example configs parse as YAML and use the documented keys", () => {
  it("vaultik.yml: the full server example", async () => {
    const c = await yamlExample("vaultik.yml");
    expect(Object.keys(c).sort()).toEqual(
      [
        "age_recipient",
        "source_dirs",
        "exclude",
        "s3",
        "index_path",
        "chunk_size",
        "blob_size_limit",
        "index_prefix",
        "backup_interval",
        "full_scan_interval",
        "min_time_between_run",
        "retention",
        "hooks",
        "commands",
        "databases",
        "status",
        "alerts",
        "limit_upload",
      ].sort(),
    );
    expect(c.age_recipient).toBe(AGE_SPEC_EXAMPLE_KEY);
    expect(c.source_dirs).toEqual(["/etc", "/home", "/var/lib/docker/volumes"]);
    expect(c.exclude).toEqual(["*.log", "node_modules/", "/home/*/.cache"]);
    expect(c.s3).toEqual({
      endpoint: expect.stringMatching(/^https:\/\//),
      bucket: expect.any(String),
      prefix: expect.stringMatching(/\/$/),
      access_key_id: expect.any(String),
      secret_access_key_file: "/run/secrets/vaultik_s3_secret",
      region: expect.any(String),
    });
    // The secret itself must never be inlined in the example people copy.
    expect(at(c, "s3", "secret_access_key")).toBeUndefined();
    expect(c).toMatchObject({
      index_path: "/var/lib/vaultik/index.sqlite",
      chunk_size: "1MiB",
      blob_size_limit: "16MiB",
      index_prefix: "index/",
      backup_interval: "1h",
      full_scan_interval: "24h",
      min_time_between_run: "15m",
      limit_upload: "20MiB/s",
      status: { listen: "127.0.0.1:9812", token_file: "/run/secrets/vaultik_status_token" },
      alerts: { webhook: "https://hooks.example.com/vaultik", ntfy: "https://ntfy.sh/my-backups", stale_after: "26h" },
      commands: [{ name: "postgres", run: "pg_dump -Fc -h db -U app app", path: "databases/app.dump" }],
    });
    expect(c.hooks).toEqual({ pre_backup: expect.any(String), post_backup: expect.any(String), timeout: "5m" });
  });

  it("vaultik.yml: retention is time-based, with no count-only rule a compromised source can defeat", async () => {
    const c = await yamlExample("vaultik.yml");
    expect(c.retention).toEqual({ keep_within: "30d", keep_daily: 14, keep_weekly: 8, keep_monthly: 12 });
    expect(at(c, "retention", "keep_last")).toBeUndefined();
    // The reason is part of the example: without it the next person "simplifies" to keep_last.
    expect(await example("vaultik.yml")).toMatch(/keep_last[\s\S]{0,200}(fake|compromised)/);
  });

  it("local.yml: the embedded directory store instead of s3", async () => {
    const c = await yamlExample("local.yml");
    expect(c.store).toBe("/var/backups/vaultik");
    expect(c.s3).toBeUndefined();
    expect(c.age_recipient).toBe(AGE_SPEC_EXAMPLE_KEY);
    expect(Array.isArray(c.source_dirs) && c.source_dirs.length > 0).toBe(true);
  });

  it("every example recipient is a well-formed age public key (valid bech32 checksum)", async () => {
    for (const name of ["vaultik.yml", "local.yml", "vaultik-compose.yml"]) {
      const key = (await yamlExample(name)).age_recipient;
      expect(key, name).toMatch(/^age1[02-9ac-hj-np-z]{58}$/);
      expect(bech32.decode(key as `${string}1${string}`).prefix, name).toBe("age");
    }
  });

  it("vaultik-compose.yml: paths inside the container, secrets from compose, status reachable from the host", async () => {
    const c = await yamlExample("vaultik-compose.yml");
    expect(c.source_dirs).toEqual(["/data/app"]);
    expect(c.commands).toBeUndefined();
    expect(c.databases).toEqual([{ type: "postgres", host: "db", user: "postgres", database: "app", path: "/databases/app.pgdump" }]);
    expect(at(c, "status", "listen")).toBe("0.0.0.0:9812");
    expect(c.index_path).toMatch(/^\/var\/lib\/vaultik\//);
    // The secret files must be the ones compose mounts (/run/secrets/<secret name>).
    const compose = await yamlExample("docker-compose.yml");
    const secretNames = Object.keys((compose.secrets as Record<string, unknown>) ?? {});
    for (const file of [at(c, "s3", "secret_access_key_file"), at(c, "status", "token_file")]) {
      expect(file).toMatch(/^\/run\/secrets\//);
      expect(secretNames).toContain(String(file).slice("/run/secrets/".length));
    }
    // No password in the config: PGPASSWORD comes from the compose environment.
    expect(JSON.stringify(c)).not.toMatch(/password/i);
  });

  it("docker-compose.yml: db and vaultik, app volume read-only, secrets, state volume, config mount", async () => {
    const compose = await yamlExample("docker-compose.yml");
    const services = compose.services as Record<string, unknown>;
    expect(Object.keys(services)).toEqual(expect.arrayContaining(["db", "vaultik"]));

    expect(at(services, "db", "image")).toBe("postgres:16");
    expect(at(services, "db", "volumes")).toContain("pgdata:/var/lib/postgresql/data");

    const v = services.vaultik;
    expect(at(v, "build")).toMatchObject({ context: "..", dockerfile: "examples/Dockerfile" });
    const mounts = (at(v, "volumes") as unknown[]).map(normalizeMount);
    expect(mounts).toContainEqual({ source: "appdata", target: "/data/app", readOnly: true });
    expect(mounts).toContainEqual({ source: "vaultik-state", target: "/var/lib/vaultik", readOnly: false });
    expect(mounts).toContainEqual({ source: "./vaultik-compose.yml", target: "/etc/vaultik/vaultik.yml", readOnly: true });
    // Every mount except the state volume is read-only: the container backs up, it never writes.
    expect(mounts.filter((m) => !m.readOnly).map((m) => m.target)).toEqual(["/var/lib/vaultik"]);

    const used = (at(v, "secrets") as unknown[]).map((s) => (typeof s === "string" ? s : String(at(s, "source"))));
    expect(used.sort()).toEqual(["s3_secret", "status_token"]);
    expect(at(compose, "secrets", "s3_secret", "file")).toEqual(expect.any(String));
    expect(at(compose, "secrets", "status_token", "file")).toEqual(expect.any(String));

    expect(Object.keys(compose.volumes as Record<string, unknown>)).toEqual(
      expect.arrayContaining(["pgdata", "appdata", "vaultik-state"]),
    );
    expect(at(v, "environment", "PGPASSWORD")).toMatch(/\$\{POSTGRES_PASSWORD/);
    // Published on the host's loopback only.
    expect(at(v, "ports")).toEqual(["127.0.0.1:9812:9812"]);
  });
});

interface Mount {
  source: string;
  target: string;
  readOnly: boolean;
}

/** Compose's short (`src:dst[:ro]`) and long ({source, target, read_only}) volume syntax. */
function normalizeMount(m: unknown): Mount {
  if (typeof m === "string") {
    const [source = "", target = "", mode = ""] = m.split(":");
    return { source, target, readOnly: mode.split(",").includes("ro") };
  }
  return { source: String(at(m, "source")), target: String(at(m, "target")), readOnly: at(m, "read_only") === true };
}

// ---------------------------------------------------------------------------------------------
// crontab

describe("examples/crontab", () => {
  /** Lines cron executes: not comments, not blank, not VAR=value settings. */
  async function jobs(): Promise<string[]> {
    return (await example("crontab"))
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l !== "" && !l.startsWith("#") && !/^[A-Za-z_][A-Za-z0-9_]*\s*=/.test(l));
  }

  // minute, hour, day of month, month, day of week
  const RANGES: [number, number][] = [[0, 59], [0, 23], [1, 31], [1, 12], [0, 7]];

  function validField(field: string, [lo, hi]: [number, number]): boolean {
    return field.split(",").every((part) => {
      const m = /^(\*|(\d+)(?:-(\d+))?)(?:\/(\d+))?$/.exec(part);
      if (!m) return false;
      const nums = [m[2], m[3]].filter((x) => x !== undefined).map(Number);
      return nums.every((n) => n >= lo && n <= hi) && (m[4] === undefined || Number(m[4]) > 0);
    });
  }

  it("has one nightly job: five valid time fields, then `vaultik backup ... --cron`", async () => {
    const lines = await jobs();
    expect(lines).toHaveLength(1);
    const fields = lines[0]!.split(/\s+/);
    const time = fields.slice(0, 5);
    time.forEach((f, i) => expect(validField(f, RANGES[i]!), `time field ${i + 1}: ${f}`).toBe(true));
    // Daily: a fixed minute and hour, every day.
    expect(time.slice(2)).toEqual(["*", "*", "*"]);
    const command = fields.slice(5);
    expect(command.slice(0, 3)).toEqual(["vaultik", "backup", "/etc/vaultik/vaultik.yml"]);
    expect(command).toContain("--cron");
    expect(command).not.toContain("--daemon");
  });

  it("explains MAILTO, and keeps check/prune (private key) off the source host", async () => {
    const text = await example("crontab");
    expect(text).toMatch(/^MAILTO=/m);
    const active = (await jobs()).join("\n");
    expect(active).not.toMatch(/vaultik (check|prune|restore|fetch)/);
    // The weekly check is shown only as a comment, marked as belonging on the recovery machine.
    expect(text).toMatch(/^#.*\bvaultik check --config\b/m);
    expect(text).toMatch(/recovery machine/);
  });
});

// ---------------------------------------------------------------------------------------------
// Dockerfile

describe("examples/Dockerfile", () => {
  /** Instructions with line continuations joined and comments dropped. */
  async function instructions(): Promise<string[]> {
    const text = (await example("Dockerfile")).replace(/\\\n/g, " ");
    return text
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l !== "" && !l.startsWith("#"));
  }

  it("builds from node:20-slim in every stage and documents how to build", async () => {
    const lines = await instructions();
    const froms = lines.filter((l) => /^FROM\s/i.test(l));
    expect(froms.length).toBeGreaterThanOrEqual(2); // compilers only in the build stage
    expect(lines[0]).toMatch(/^FROM node:20-slim\b/);
    for (const f of froms) expect(f).toMatch(/^FROM node:20-slim\b/);
    expect(await example("Dockerfile")).toContain("npm pack && docker build -f examples/Dockerfile -t vaultik .");
  });

  it("installs the packed tarball, with build tools only in the build stage", async () => {
    const lines = await instructions();
    const finalStart = lines.map((l) => /^FROM\s/i.test(l)).lastIndexOf(true);
    const build = lines.slice(0, finalStart).join("\n");
    const final = lines.slice(finalStart).join("\n");
    expect(build).toMatch(/^COPY vaultik-\*\.tgz \/tmp\/$/m);
    expect(build).toMatch(/npm install -g\b/);
    expect(build).toMatch(/\/tmp\/vaultik-\*\.tgz/);
    expect(build).toMatch(/python3 make g\+\+/);
    expect(final).not.toMatch(/g\+\+|\bmake\b/);
    expect(final).toMatch(/COPY --from=build \/usr\/local\/lib\/node_modules\//);
  });

  it("runs as a non-root user with the index in a volume", async () => {
    const lines = await instructions();
    const users = lines.filter((l) => /^USER\s/i.test(l));
    expect(users.length).toBeGreaterThan(0);
    expect(users.at(-1)).not.toMatch(/^USER\s+(root|0)(:|\s|$)/);
    expect(lines).toContain("VOLUME /var/lib/vaultik");
  });

  it("has a HEALTHCHECK using `vaultik health-check`, and the daemon as default command", async () => {
    const lines = await instructions();
    expect(lines).toContain(
      "HEALTHCHECK --interval=5m --timeout=30s CMD if [ -f /etc/vaultik/vaultik.yml ]; then vaultik health-check /etc/vaultik/vaultik.yml; else vaultik health-check; fi",
    );
    expect(lines).toContain('ENTRYPOINT ["vaultik"]');
    expect(lines).toContain('CMD ["backup", "/etc/vaultik/vaultik.yml", "--daemon"]');
  });
});

// ---------------------------------------------------------------------------------------------
describe("example configs load with vaultik's own config loader", () => {
  // /run/secrets does not exist on a test machine: the loader reads secrets through readFile.
  const secrets = (path: string) => {
    if (path.startsWith("/run/secrets/")) return "secret-from-file";
    throw new Error(`unexpected read of ${path}`);
  };
  const load = async (name: string) => parseConfig(await example(name), { path: join(EXAMPLES, name), env: {}, readFile: secrets });

  it("vaultik.yml: S3 store, sizes, durations, time-based retention, hooks, commands, status, alerts", async () => {
    const c = await load("vaultik.yml");
    expect(c.store.kind).toBe("s3");
    expect(c.store.kind === "s3" && c.store.secretAccessKey).toBe("secret-from-file");
    expect([c.chunkSize, c.blobSizeLimit, c.backupInterval, c.limitUpload]).toEqual([1 << 20, 16 << 20, 3600_000, 20 << 20]);
    expect(c.alerts?.staleAfter).toBe(26 * 3600_000);
    expect(c.retention).toEqual({ keepWithin: 30 * 86400_000, keepDaily: 14, keepWeekly: 8, keepMonthly: 12 });
    expect(c.status?.token).toBe("secret-from-file");
    expect(c.commands.map((x) => x.path)).toEqual(["databases/app.dump"]);
    expect(c.databases.map((d) => [d.type, d.name, d.path, d.password])).toEqual([
      ["mariadb", "mariadb-shop", "databases/shop.sql", "secret-from-file"],
      ["redis", "redis", "databases/redis.rdb", "secret-from-file"],
      ["sqlite", "sqlite-app", "databases/app.db", undefined],
    ]);
  });

  it("local.yml: the embedded directory store", async () => {
    const c = await load("local.yml");
    expect(c.store).toEqual({ kind: "fs", path: "/var/backups/vaultik" });
  });

  it("vaultik-compose.yml: loads, with the dump as a database source", async () => {
    const c = await load("vaultik-compose.yml");
    expect(c.store.kind).toBe("s3");
    expect(c.commands).toEqual([]);
    expect(c.databases.map((d) => [d.name, d.type, d.host, d.database, d.path, d.password])).toEqual([
      ["postgres-app", "postgres", "db", "app", "databases/app.pgdump", undefined],
    ]);
  });
});
