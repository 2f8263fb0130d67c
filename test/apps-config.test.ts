import { hostname } from "node:os";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { appsOf, parseConfig, type Config } from "../src/config/index.js";
import { encodeRecipient } from "../src/crypto/keys.js";
import { ConfigError } from "../src/errors.js";

// `apps:` and `hostname:` (issue 19): each app is one backup job with its own sources, timing,
// hooks, retention and snapshot host; the repository, index and status server are shared.

const R1 = encodeRecipient(Buffer.alloc(32, 1));
const BASE = { age_recipient: R1, store: "/repo", index_path: "/state/index.sqlite" };

function parse(doc: Record<string, unknown>): Config {
  return parseConfig(stringify(doc), { path: "/cfg/host.yml", env: { HOME: "/home/u" }, readFile: () => "" });
}

function configError(doc: Record<string, unknown>): ConfigError {
  try {
    parse(doc);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("parsed without error");
}

describe("apps:", () => {
  it("reads each app with its own keys; top-level exclude, timing, hooks and retention are defaults", () => {
    const c = parse({
      ...BASE,
      hostname: "box",
      exclude: ["*.tmp"],
      schedule: "0 3 * * *",
      min_time_between_run: "1m",
      retention: { keep_last: 9 },
      hooks: { pre_backup: "echo top" },
      apps: [
        { name: "web", source_dirs: ["/srv/web"], exclude: ["cache/"], schedule: "*/10 * * * *", retention: { keep_daily: 7 } },
        { name: "db.main", source_dirs: ["./db"], backup_interval: "2h", host: "dbhost", commands: [{ name: "dump", run: "pg_dump x", path: "db/x.dump" }] },
        { name: "mail_1", source_dirs: ["/srv/mail"] },
      ],
    });
    expect(c.hostname).toBe("box");
    const [web, db, mail] = appsOf(c);
    expect(web).toMatchObject({
      name: "web", host: "box-web", sourceDirs: ["/srv/web"], exclude: ["*.tmp", "cache/"],
      schedule: "*/10 * * * *", retention: { keepDaily: 7 }, hooks: { preBackup: "echo top" }, commands: [],
    });
    // An interval of its own means the app is watched: no inherited schedule.
    expect(db).toMatchObject({ name: "db.main", host: "dbhost", sourceDirs: ["/cfg/db"], schedule: undefined, backupInterval: 2 * 3600_000, minTimeBetweenRun: 60_000 });
    expect(db!.commands).toEqual([{ name: "dump", run: "pg_dump x", path: "db/x.dump" }]);
    // "_" is not allowed in snapshot ids: the default host turns it into "-".
    expect(mail).toMatchObject({ name: "mail_1", host: "box-mail-1", schedule: "0 3 * * *", retention: { keepLast: 9 }, exclude: ["*.tmp"] });
  });

  it("without hostname: the machine's name is the prefix of the default app host", () => {
    const c = parse({ ...BASE, apps: [{ name: "web", source_dirs: ["/srv/web"] }] });
    expect(appsOf(c)[0]!.host).toBe(`${hostname().replace(/[^A-Za-z0-9.-]+/g, "-")}-web`);
  });

  it("a config without apps: is one app named default, with its hostname as host", () => {
    const plain = parse({ ...BASE, source_dirs: ["/data"] });
    expect(plain.apps).toBeUndefined();
    expect(appsOf(plain)).toEqual([expect.objectContaining({ name: "default", host: undefined, sourceDirs: ["/data"] })]);
    const named = parse({ ...BASE, source_dirs: ["/data"], hostname: "nas" });
    expect(appsOf(named)[0]!.host).toBe("nas");
  });

  it.each([
    [{ apps: [{ name: "Web", source_dirs: ["/a"] }] }, "apps[0].name"],
    [{ apps: [{ name: "a", source_dirs: ["/a"] }, { name: "a", source_dirs: ["/b"] }] }, "apps[1].name"],
    [{ apps: [{ name: "a", source_dirs: ["/a"], host: "x" }, { name: "b", source_dirs: ["/b"], host: "x" }] }, "apps[1].host"],
    [{ apps: [{ name: "a" }] }, "apps[0].source_dirs"],
    [{ apps: [{ name: "a", source_dirs: ["/a"], exlcude: [] }] }, "apps[0].exlcude"],
    [{ apps: [{ name: "a", source_dirs: ["/a"], schedule: "nope" }] }, "apps[0].schedule"],
    [{ apps: [{ name: "a", source_dirs: ["/a"], commands: [{ name: "d", run: "x", path: "/abs" }] }] }, "apps[0].commands[0].path"],
    [{ apps: [] }, "apps"],
    [{ source_dirs: ["/x"], apps: [{ name: "a", source_dirs: ["/a"] }] }, "source_dirs"],
    [{ hostname: "bad host!" }, "hostname"],
  ])("rejects %j at %s", (extra, key) => {
    const doc: Record<string, unknown> = { ...BASE, ...extra };
    if (!("apps" in extra) && !("source_dirs" in extra)) doc["source_dirs"] = ["/d"];
    expect(configError(doc).key).toBe(key);
  });
});
