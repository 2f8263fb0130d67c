import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collect, spawnCli, vaultik } from "./helpers/cli.js";
import { backupId, cliKeys, localRepo, type LocalRepo } from "./helpers/setup.js";
import { pseudoRandom } from "./helpers/tree.js";

// What a user sees when an argument is missing, wrong or in an unusual form: through the
// built binary, messages labelled by what they are about, and the exit codes --help promises.

let dir: string;
let r: LocalRepo;
let id: string;
let key: Record<string, string>;
const big = pseudoRandom(300 * 1024, 7);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vaultik-usage-"));
  r = await localRepo(join(dir, "site"), await cliKeys());
  await writeFile(join(r.source, "hello.txt"), "hello\n");
  await writeFile(join(r.source, "big.bin"), big);
  id = await backupId(r);
  key = { VAULTIK_PRIVATE_KEY: r.identity };
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("argument and key errors say what they are about", () => {
  it("keygen -o onto an existing file: exit 2, labelled --output, not config", async () => {
    const existing = join(dir, "key.txt");
    await writeFile(existing, "precious\n");
    const res = await vaultik(["keygen", "-o", existing]);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/^vaultik: error: --output: .*key\.txt exists/m);
    expect(res.stderr).not.toContain("config");
    expect(await readFile(existing, "utf8")).toBe("precious\n");
  });

  it("a config file that cannot be read: 'config: cannot read', said once", async () => {
    const res = await vaultik(["backup", join(dir, "missing.yml")]);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/^vaultik: error: config: cannot read .*missing\.yml/m);
    expect(res.stderr).not.toContain("config: config:");
  });

  it("no private key: exit 2, labelled VAULTIK_PRIVATE_KEY, not config", async () => {
    const res = await vaultik(["restore", r.repo, id, join(dir, "nokey")]);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/^vaultik: error: VAULTIK_PRIVATE_KEY: .*--identity/m);
    expect(res.stderr).not.toContain("config");
  });

  it("a malformed key: exit 2, labelled by where it came from", async () => {
    const res = await vaultik(["restore", r.repo, id, join(dir, "badkey")], { env: { VAULTIK_PRIVATE_KEY: "AGE-SECRET-KEY-1NOTAKEY" } });
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/^vaultik: error: VAULTIK_PRIVATE_KEY: /m);
    expect(res.stderr).not.toContain("config");
  });

  it("restore with TARGET_DIR left out names TARGET_DIR", async () => {
    const res = await vaultik(["restore", r.repo, "", "latest"], { env: key });
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/^vaultik: error: TARGET_DIR: missing/m);
    expect(res.stderr).not.toMatch(/got \d/);
  });

  it("fetch with nothing after the repository names SNAPSHOT_ID", async () => {
    const res = await vaultik(["fetch", r.repo], { env: key });
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/^vaultik: error: SNAPSHOT_ID: missing/m);
  });

  it("one argument too many is named", async () => {
    const res = await vaultik(["restore", r.repo, "", "latest", join(dir, "t"), "extra"], { env: key });
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/unexpected argument "extra"/);
  });

  it("a restore target that is a regular file: exit 2 naming it, no raw EEXIST", async () => {
    const file = join(dir, "a-file");
    await writeFile(file, "not a directory");
    const res = await vaultik(["restore", r.repo, id, file], { env: key });
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/^vaultik: error: TARGET_DIR: .*a-file is not a directory/m);
    expect(res.stderr).not.toContain("EEXIST");
    expect(await readFile(file, "utf8")).toBe("not a directory");
  });

  it("a restore target below a regular file: exit 2 naming the file", async () => {
    const file = join(dir, "another-file");
    await writeFile(file, "x");
    const res = await vaultik(["restore", r.repo, id, join(file, "sub")], { env: key });
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/^vaultik: error: TARGET_DIR: .*another-file is not a directory/m);
    expect(res.stderr).not.toContain("ENOTDIR");
  });
});

describe("where the repository is", () => {
  it("a local directory needs no PREFIX: ./repo, other/repo, and the name of an existing directory", async () => {
    const site = join(dir, "site");
    for (const [cwd, bucket] of [[site, "./repo"], [dir, "site/repo"], [site, "repo"]] as const) {
      const res = await vaultik(["snapshots", bucket, "--json"], { cwd });
      expect(res.code, `${bucket}: ${res.stderr}`).toBe(0);
      expect((JSON.parse(res.stdout) as { id: string }[]).map((s) => s.id), bucket).toEqual([id]);
    }
    const target = join(dir, "restored-rel");
    const res = await vaultik(["restore", "site/repo", "latest", target], { cwd: dir, env: key });
    expect(res.code, res.stderr).toBe(0);
    expect(await readFile(join(target, r.source.slice(1), "hello.txt"), "utf8")).toBe("hello\n");
  });

  it('an explicit "" PREFIX still works, and a PREFIX names a subdirectory', async () => {
    const res = await vaultik(["snapshots", r.repo, "", "--json"]);
    expect(res.code, res.stderr).toBe(0);
    expect(JSON.parse(res.stdout)).toHaveLength(1);
    const sub = await vaultik(["snapshots", r.dir, "repo", "--json"]);
    expect(sub.code, sub.stderr).toBe(0);
    expect(JSON.parse(sub.stdout)).toHaveLength(1);
  });

  it("a name that is neither a bucket name nor a directory: exit 2 naming BUCKET", async () => {
    const res = await vaultik(["snapshots", "Not_A_Bucket"], { cwd: dir });
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/^vaultik: error: BUCKET: "Not_A_Bucket" is not/m);
  });

  it("credentials and keys from *_FILE variables are read as the config reads them: a missing file is named, exit 2", async () => {
    const missing = join(dir, "no-such-secret");
    const s3 = await vaultik(["snapshots", "my-bucket"], { cwd: dir, env: { AWS_ACCESS_KEY_ID: "AKIAEXAMPLE", AWS_SECRET_ACCESS_KEY_FILE: missing } });
    expect(s3.code).toBe(2);
    expect(s3.stderr).toContain(`vaultik: error: AWS_SECRET_ACCESS_KEY_FILE: cannot read ${missing}: no such file\n`);
    const identity = await vaultik(["restore", r.repo, "latest", join(dir, "never")], { env: { VAULTIK_PRIVATE_KEY_FILE: missing } });
    expect(identity.code).toBe(2);
    expect(identity.stderr).toContain(`vaultik: error: VAULTIK_PRIVATE_KEY_FILE: cannot read ${missing}: no such file\n`);
  });
});

describe("fetch to stdout", () => {
  it("`fetch … FILE -` writes the file's bytes to stdout and creates no file named -", async () => {
    const cwd = join(dir, "fetch-cwd");
    await mkdir(cwd, { recursive: true });
    const small = await vaultik(["fetch", r.repo, "latest", join(r.source, "hello.txt"), "-"], { cwd, env: key });
    expect(small.code, small.stderr).toBe(0);
    expect(small.stdout).toBe("hello\n");
    expect(small.stderr).toBe("");
    expect(existsSync(join(cwd, "-"))).toBe(false);
    const res = await vaultik(["fetch", r.repo, "latest", join(r.source, "big.bin"), "-"], { cwd, env: key });
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdoutBytes.equals(big)).toBe(true);
  });

  it("a reader that closes the pipe early (`| head`) ends the fetch quietly", async () => {
    const child = spawnCli(["fetch", r.repo, "latest", join(r.source, "big.bin"), "-"], { env: key });
    const stdout = child.stdout!;
    stdout.once("data", () => stdout.destroy());
    const res = await collect(child);
    expect(res.stderr).toBe("");
    expect(res.code).toBe(0);
  });

  it("a directory to stdout is refused, naming it", async () => {
    const res = await vaultik(["fetch", r.repo, "latest", r.source, "-"], { env: key });
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/is a directory/);
    expect(res.stdout).toBe("");
  });
});

describe("--help", () => {
  // The exit codes each command can return; the repository commands also say where it is.
  const expected: Record<string, { exits: number[]; repository: boolean }> = {
    keygen: { exits: [0, 1, 2], repository: false },
    backup: { exits: [0, 1, 2, 3, 11, 130], repository: false },
    snapshots: { exits: [0, 1, 2, 12], repository: true },
    restore: { exits: [0, 1, 2, 10, 12, 130], repository: true },
    fetch: { exits: [0, 1, 2, 10, 12, 130], repository: true },
    prune: { exits: [0, 1, 2, 11, 12], repository: true },
    forget: { exits: [0, 1, 2, 10], repository: true },
    check: { exits: [0, 1, 2, 12], repository: true },
    "health-check": { exits: [0, 1, 2], repository: false },
    version: { exits: [0], repository: false },
  };

  it("every command lists its exit codes, and every repository command each way to give the repository", async () => {
    const helps = await Promise.all(Object.keys(expected).map(async (cmd) => [cmd, await vaultik([cmd, "--help"])] as const));
    for (const [cmd, res] of helps) {
      expect(res.code, cmd).toBe(0);
      const section = res.stdout.split("Exit codes:")[1] ?? "";
      const codes = [...section.matchAll(/^ {2}(\d+) /gm)].map((m) => Number(m[1]));
      expect(codes, cmd).toEqual(expected[cmd]!.exits);
      if (!expected[cmd]!.repository) continue;
      for (const s of ["local directory", "s3://", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "VAULTIK_S3_ENDPOINT", "--config", "PREFIX"]) {
        expect(res.stdout, `${cmd} --help: ${s}`).toContain(s);
      }
    }
  });
});
