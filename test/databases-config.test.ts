import { describe, expect, it } from "vitest";
import { parseConfig, type Config } from "../src/config/index.js";
import { ConfigError } from "../src/errors.js";

// `databases:` as the config reader checks it: connection forms, defaults, uniqueness with
// `commands:`, and that no message ever quotes a password or a URL holding one.

const BASE = "age_recipient: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\nsource_dirs: [/etc]\nstore: /var/backups/v\n";
const SECRET = "s3cr3t-Pa55";

function parse(yaml: string): Config {
  return parseConfig(BASE + yaml, {
    path: "/etc/vaultik/vaultik.yml",
    env: {},
    readFile: (p) => {
      if (p === "/run/secrets/db") return `${SECRET}\n`;
      throw Object.assign(new Error("nope"), { code: "ENOENT" });
    },
  });
}

function configError(yaml: string): ConfigError {
  try {
    parse(yaml);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).not.toContain(SECRET);
    return err as ConfigError;
  }
  throw new Error("parsed");
}

describe("databases: config", () => {
  it("needs no source_dirs when databases (or commands) are given: a database-only container", () => {
    const text = BASE.replace("source_dirs: [/etc]\n", "") + "databases:\n  - type: sqlite\n    file: /srv/app.db\n";
    const c = parseConfig(text, { path: "/etc/vaultik/vaultik.yml", env: {} });
    expect(c.sourceDirs).toEqual([]);
    expect(c.databases.map((d) => d.name)).toEqual(["sqlite-app"]);
    // Without either, source_dirs is still required, and the message says what else would do.
    expect(() => parseConfig(BASE.replace("source_dirs: [/etc]\n", ""), { path: "/etc/vaultik/vaultik.yml", env: {} })).toThrow(
      /source_dirs: required: .*\(or give commands or databases\)/,
    );
  });

  it("takes the password out of a URL, keeps the rest, and derives name and path", () => {
    const c = parse(`databases:\n  - type: postgres\n    url: postgresql://app:${SECRET}@db:5433/app?sslmode=require\n`);
    expect(c.databases).toEqual([
      { name: "postgres-app", type: "postgres", path: "databases/postgres-app.pgdump", url: "postgresql://app@db:5433/app?sslmode=require", database: "app", password: SECRET },
    ]);
  });

  it("reads parts, password_file, and a leading / in path; sqlite files resolve against the config's directory", () => {
    const c = parse(
      "databases:\n  - type: mysql\n    host: db\n    port: 3307\n    user: root\n    password_file: /run/secrets/db\n    database: all\n    path: /databases//all.sql\n" +
        "  - type: sqlite\n    file: data/app.db\n  - type: redis\n    socket: /run/redis.sock\n  - type: postgres\n    url: postgres://u@h\n    database: all\n",
    );
    expect(c.databases).toEqual([
      { name: "mysql-all", type: "mysql", path: "databases/all.sql", host: "db", port: 3307, user: "root", database: "all", socket: undefined, password: SECRET },
      { name: "sqlite-app", type: "sqlite", path: "databases/sqlite-app.sqlite", file: "/etc/vaultik/data/app.db" },
      { name: "redis", type: "redis", path: "databases/redis.rdb", socket: "/run/redis.sock", host: undefined, port: undefined, user: undefined, database: undefined, password: undefined },
      { name: "postgres-all", type: "postgres", path: "databases/postgres-all.sql", url: "postgres://u@h", database: "all", password: undefined },
    ]);
  });

  it("refuses what cannot be meant, naming the key and never quoting the password", () => {
    expect(configError("databases:\n  - type: oracle\n    database: x\n").message).toBe(
      'config: databases[0].type: must be one of postgres, mysql, mariadb, redis, sqlite, mongodb, got "oracle"',
    );
    expect(configError("databases:\n  - type: postgres\n    host: db\n").key).toBe("databases[0].database");
    expect(configError(`databases:\n  - type: postgres\n    url: mysql://u:${SECRET}@h/x\n`).message).toBe(
      "config: databases[0].url: expected a postgres: or postgresql: URL for postgres, got a mysql: URL",
    );
    expect(configError(`databases:\n  - type: postgres\n    url: postgres://u:${SECRET}@h/x\n    host: db\n`).key).toBe("databases[0].url");
    expect(configError(`databases:\n  - type: postgres\n    url: postgres://u:${SECRET}@h/x\n    password_file: /run/secrets/db\n`).key).toBe("databases[0].url");
    expect(configError(`databases:\n  - type: mysql\n    url: "mysql://u:${SECRET}@h:99999/x"\n`).key).toBe("databases[0].url");
    expect(configError("databases:\n  - type: sqlite\n    file: a.db\n    host: db\n").key).toBe("databases[0].host");
    expect(configError("databases:\n  - type: redis\n    database: '1'\n").key).toBe("databases[0].database");
    expect(configError("databases:\n  - type: mysql\n    database: app\n    port: 0\n").key).toBe("databases[0].port");
    expect(configError("databases:\n  - type: mysql\n    database: app\n    file: x\n").key).toBe("databases[0].file");
    expect(configError("databases:\n  - type: mysql\n    database: app\n    pasword: x\n").message).toContain("did you mean password?");
  });

  it("keeps names unique among databases and paths unique across commands and databases", () => {
    expect(configError("databases:\n  - type: sqlite\n    file: a.db\n  - type: sqlite\n    file: b/a.db\n").message).toBe(
      'config: databases[1].name: "sqlite-a" is used by an earlier database',
    );
    expect(
      configError("commands:\n  - name: x\n    run: echo\n    path: databases/app.db\ndatabases:\n  - type: sqlite\n    file: a.db\n    path: /databases/app.db\n").message,
    ).toBe('config: databases[0].path: "databases/app.db" is used by an earlier command or database');
  });

  it("come from VAULTIK_DATABASES too (YAML flow text), as a container passes them", () => {
    const c = parseConfig(BASE, {
      path: "/etc/vaultik/vaultik.yml",
      env: { VAULTIK_DATABASES: "[{type: postgres, url: 'postgresql://app@db/app', password_file: /run/secrets/db}]" },
      readFile: () => `${SECRET}\n`,
    });
    expect(c.databases.map((d) => [d.name, d.url, d.password])).toEqual([["postgres-app", "postgresql://app@db/app", SECRET]]);
  });
});
