import { execFileSync } from "node:child_process";
import { chmodSync, cpSync, lchownSync, readFileSync, lutimesSync, mkdirSync, symlinkSync, linkSync, utimesSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Repository } from "../src/repo/repository.js";
import { openFsStore } from "../src/store/fs.js";
import { vaultik, type CliResult } from "./helpers/cli.js";
import { craftEntries } from "./helpers/craft-snapshot.js";
import { s3rverCliEnv, s3rverMirroring, type S3rverHandle } from "./helpers/s3rver.js";
import { backupAt, cliKeys, localRepo, type LocalRepo } from "./helpers/setup.js";

// Issue 16 item 1: `vaultik ls` through the built binary, on a directory repository and the
// same objects served by s3rver. A real backup of a tree with tricky names, and a crafted
// snapshot whose source lies below directories it records nothing for (implied ancestors).

const isRoot = process.getuid?.() === 0;
/** Owners the listing shows: as root the tree is given ids no user or group has, so numbers. */
const [USER, GROUP] = isRoot ? ["4242", "4343"] : [execFileSync("id", ["-un"]).toString().trim(), execFileSync("id", ["-gn"]).toString().trim()];
const T = 1_600_000_000; // 2020-09-13 12:26:40 UTC
const TIME = "2020-09-13 12:26:40";

let dir: string;
let r: LocalRepo;
let src: string; // the source directory's snapshot path, shown: /tmp/vaultik-ls-XXXX/source
let real: string;
let crafted: string;
let server: S3rverHandle;

/** The source's direct entries in byte order: name (bytes, as latin1), as listings show it, mode string, size. */
const TREE: [string, string, string, number][] = [
  ["a.txt", "a.txt", "-rw-r--r--", 6],
  ["bad\xff", "bad\\xff", "-rw-r--r--", 4],
  ["empty", "empty", "drwxr-xr-x", 0],
  ["fifo", "fifo", "prw-r--r--", 0],
  ["hard1", "hard1", "-rw-r--r--", 7],
  ["hard2", "hard2", "-rw-r--r--", 7],
  ["link", "link", "lrwxrwxrwx", 0],
  ["new\nline", "new\\x0aline", "-rw-r--r--", 3],
  ["sgid", "sgid", "-rw-r-Sr--", 2],
  ["sticky", "sticky", "drwxrwxrwt", 0],
  ["sub", "sub", "drwxr-xr-x", 0],
  ["sub.txt", "sub.txt", "-rwsr-xr-x", 2],
  ["with space", "with space", "-rw-r--r--", 6],
  ["\xc3\xbcn\xc3\xafc\xc3\xb6d\xc3\xa9", "\u00fcn\u00efc\u00f6d\u00e9", "-rw-r--r--", 8],
];

function makeTree(source: string): void {
  const at = (name: string) => Buffer.concat([Buffer.from(`${source}/`), Buffer.from(name, "latin1")]);
  const file = (name: string, content: string, mode: number) => {
    writeFileSync(at(name), content);
    chmodSync(at(name), mode);
  };
  file("a.txt", "hello\n", 0o644);
  file("bad\xff", "bad\n", 0o644);
  mkdirSync(at("empty"));
  execFileSync("mkfifo", ["-m", "644", join(source, "fifo")]);
  file("hard1", "linked\n", 0o644);
  linkSync(at("hard1"), at("hard2"));
  symlinkSync("a.txt", at("link"));
  file("new\nline", "nl\n", 0o644);
  file("sgid", "g\n", 0o2644);
  mkdirSync(at("sticky"));
  chmodSync(at("sticky"), 0o1777);
  mkdirSync(join(source, "sub", "deeper"), { recursive: true });
  file("sub/deeper/leaf", "leaf\n", 0o600);
  file("sub.txt", "s\n", 0o4755);
  file("with space", "space\n", 0o644);
  file("\xc3\xbcn\xc3\xafc\xc3\xb6d\xc3\xa9", "unicode\n", 0o644);
  for (const d of ["empty", "sub", "sub/deeper"]) chmodSync(at(d), 0o755);
  chmodSync(source, 0o755);
  // Owners and times last, deepest first, so nothing changes a directory's mtime afterwards.
  const all = [...TREE.map(([n]) => n), "sub/deeper/leaf", "sub/deeper"].sort((a, b) => b.split("/").length - a.split("/").length);
  for (const n of [...all, ""]) {
    const p = n === "" ? Buffer.from(source) : at(n);
    if (isRoot) lchownSync(p, 4242, 4343);
    lutimesSync(p, T, T + 0.25);
  }
  // A chown clears setuid.
  chmodSync(at("sub.txt"), 0o4755);
  utimesSync(source, T, T + 0.25);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vaultik-ls-"));
  const keys = await cliKeys();
  r = await localRepo(dir, keys);
  makeTree(r.source);
  real = await backupAt(r, Date.UTC(2026, 10, 1, 10), "alpha");
  src = r.source;
  crafted = await craftEntries(
    { repo: new Repository(openFsStore(r.repo)), recipient: keys.recipient, host: "beta", time: new Date(Date.UTC(2026, 10, 2)), sourceDirs: ["/srv/data", "/opt"] },
    [
      { path: "opt/x", type: "file", mode: 0o640, uid: 0, gid: 0, size: 12, mtimeNs: 1_600_000_000_123_456_789n },
      { path: "srv/data", type: "dir", mode: 0o750, uid: 1000, gid: 50, userName: "alice", groupName: "staff", size: 0, mtimeNs: 1_600_000_000_000_000_000n },
      { path: "srv/data/dev-b", type: "blockdev", mode: 0o660, uid: 0, gid: 6, groupName: "disk", size: 0, rdev: (8 << 8) | 1, mtimeNs: 1_600_000_000_000_000_000n },
      { path: "srv/data/dev-c", type: "chardev", mode: 0o666, uid: 0, gid: 5, groupName: "tty", size: 0, rdev: (4 << 8) | 64, mtimeNs: 1_600_000_000_000_000_000n },
      { path: "srv/data/notes", type: "file", mode: 0o644, uid: 1000, gid: 50, userName: "alice", groupName: "staff", size: 1234567, mtimeNs: -1_000_000_000n,
        xattrs: [{ name: "user.comment", value: Buffer.from("hi") }, { name: "user.z", value: Buffer.alloc(0) }] },
    ],
  );
  server = await s3rverMirroring(r.repo, "mirror");
}, 120_000);

afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

const STORES = [
  ["directory store", () => [r.repo], () => ({})],
  ["s3rver", () => [server.bucket, "mirror"], () => s3rverCliEnv(server)],
] as const;

describe.each(STORES)("vaultik ls on the %s", (_name, repoArgs, env) => {
  async function ls(...args: string[]): Promise<CliResult> {
    const out = await vaultik(["ls", ...repoArgs(), ...args], { env: { ...env(), VAULTIK_PRIVATE_KEY: r.identity } });
    return out;
  }
  async function ok(...args: string[]): Promise<string> {
    const out = await ls(...args);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stderr).toBe("");
    return out.stdout;
  }
  const ancestors = () => src.split("/").slice(1).map((_, i, parts) => `/${parts.slice(0, i + 1).join("/")}`);

  it("ls SNAPSHOT lists the top of the snapshot, one path per line with a leading /", async () => {
    expect(await ok(real)).toBe(`/${src.split("/")[1]}\n`);
  });

  it("ls -R lists every entry below /, in byte order of the paths, names escaped", async () => {
    // "sub.txt" sorts before "sub/…" ("." < "/"): the order is the paths' bytes.
    const below = TREE.flatMap(([, n]) => (n === "sub.txt" ? [n, "sub/deeper", "sub/deeper/leaf"] : [n])).map((n) => `${src}/${n}`);
    expect(await ok(real, "-R")).toBe([...ancestors(), ...below].join("\n") + "\n");
  });

  it("ls -l PATH shows type and mode, owner, size, mtime (UTC) and symlink targets, aligned", async () => {
    const lines = TREE.map(([, n, mode, size]) => `${mode}  ${USER}  ${GROUP}  ${size}  ${TIME}  ${src}/${n}${n === "link" ? " -> a.txt" : ""}`);
    expect(await ok(real, src, "-l")).toBe(lines.join("\n") + "\n");
  });

  it("ls -l -R on a subdirectory, and a trailing / on PATH", async () => {
    expect(await ok(real, `${src}/sub/`, "-l", "-R")).toBe(
      `drwxr-xr-x  ${USER}  ${GROUP}  0  ${TIME}  ${src}/sub/deeper\n-rw-------  ${USER}  ${GROUP}  5  ${TIME}  ${src}/sub/deeper/leaf\n`,
    );
  });

  it("ls PATH of a file lists that entry; a name not in UTF-8 typed back as \\xHH; --json has every field", async () => {
    expect(await ok(real, `${src}/with space`)).toBe(`${src}/with space\n`);
    expect(await ok(real, `${src}/bad\\xff`)).toBe(`${src}/bad\\xff\n`);
    expect(await ok(real, `${src}/new\\x0aline`, "-l")).toBe(`-rw-r--r--  ${USER}  ${GROUP}  3  ${TIME}  ${src}/new\\x0aline\n`);
    const owner = isRoot ? { uid: 4242, gid: 4343, user: null, group: null } : { uid: process.getuid!(), gid: process.getgid!(), user: USER, group: GROUP };
    const json = await ok(real, `${src}/hard2`, "--json");
    const parsed = JSON.parse(json) as { link_id: number }[];
    expect(json).toBe(
      JSON.stringify(
        [
          {
            path: `${src}/hard2`, type: "file", implied: false, mode: 0o644, mode_string: "-rw-r--r--", ...owner, size: 7,
            mtime: "2020-09-13T12:26:40.250000000Z", link_target: null, rdev: null, link_id: parsed[0]!.link_id, links_to: `${src}/hard1`, xattrs: [], status: null,
          },
        ],
        null,
        2,
      ) + "\n",
    );
    expect(parsed[0]!.link_id).toBeGreaterThan(0);
    const link = JSON.parse(await ok(real, `${src}/link`, "--json")) as Record<string, unknown>[];
    expect([link[0]!["link_target"], link[0]!["mode_string"], link[0]!["type"]]).toEqual(["a.txt", "lrwxrwxrwx", "symlink"]);
  });

  it("an empty directory lists nothing; a path not in the snapshot exits 10", async () => {
    expect(await ok(real, `${src}/empty`)).toBe("");
    expect(await ok(real, `${src}/empty`, "--json")).toBe("[]\n");
    const missing = await ls(real, `${src}/nope`);
    expect(missing.code).toBe(10);
    expect(missing.stdout).toBe("");
    expect(missing.stderr).toContain(`${src}/nope: is not in snapshot ${real}`);
  });

  it("directories above the source that the snapshot does not record are listed as implied", async () => {
    expect(await ok(crafted)).toBe("/opt\n/srv\n");
    expect(await ok(crafted, "-l")).toBe("d?????????  ?  ?  ?  ?  /opt\nd?????????  ?  ?  ?  ?  /srv\n");
    expect(await ok(crafted, "/srv")).toBe("/srv/data\n");
    expect(await ok(crafted, "-R")).toBe("/opt\n/opt/x\n/srv\n/srv/data\n/srv/data/dev-b\n/srv/data/dev-c\n/srv/data/notes\n");
    expect(await ok(crafted, "/srv/data", "-l")).toBe(
      [
        "brw-rw----  0      disk      8, 1  2020-09-13 12:26:40  /srv/data/dev-b",
        "crw-rw-rw-  0      tty      4, 64  2020-09-13 12:26:40  /srv/data/dev-c",
        "-rw-r--r--  alice  staff  1234567  1969-12-31 23:59:59  /srv/data/notes",
      ].join("\n") + "\n",
    );
    const json = JSON.parse(await ok(crafted, "/srv", "-R", "--json")) as Record<string, unknown>[];
    expect(json[0]).toEqual({
      path: "/srv/data", type: "dir", implied: false, mode: 0o750, mode_string: "drwxr-x---", uid: 1000, gid: 50, user: "alice", group: "staff", size: 0,
      mtime: "2020-09-13T12:26:40.000000000Z", link_target: null, rdev: null, link_id: null, links_to: null, xattrs: [], status: null,
    });
    expect(json.map((e) => [e["path"], e["rdev"], e["xattrs"], e["mtime"]])).toEqual([
      ["/srv/data", null, [], "2020-09-13T12:26:40.000000000Z"],
      ["/srv/data/dev-b", 2049, [], "2020-09-13T12:26:40.000000000Z"],
      ["/srv/data/dev-c", 1088, [], "2020-09-13T12:26:40.000000000Z"],
      ["/srv/data/notes", null, ["user.comment", "user.z"], "1969-12-31T23:59:59.000000000Z"],
    ]);
    const top = JSON.parse(await ok(crafted, "--json")) as Record<string, unknown>[];
    expect(top[0]).toEqual({
      path: "/opt", type: "dir", implied: true, mode: null, mode_string: null, uid: null, gid: null, user: null, group: null, size: null,
      mtime: null, link_target: null, rdev: null, link_id: null, links_to: null, xattrs: [], status: null,
    });
  });
});

describe("vaultik ls on a format-1 snapshot (test/fixtures/format1: text paths)", () => {
  const FIXTURE = fileURLToPath(new URL("./fixtures/format1/", import.meta.url));
  const identity = readFileSync(join(FIXTURE, "TEST-KEY-NOT-SECRET.txt"), "utf8").split("\n").find((l) => l.startsWith("AGE-SECRET-KEY-1"))!;
  const S = "/tmp/vaultik-format1-fixture/source";

  it("-R, -l of a directory with a symlink, and a sticky directory", async () => {
    const repo = join(dir, "format1-repo");
    cpSync(join(FIXTURE, "repo"), repo, { recursive: true });
    const ls = async (...args: string[]) => {
      const out = await vaultik(["ls", repo, "latest", ...args], { env: { VAULTIK_PRIVATE_KEY: identity } });
      expect(out.code, out.stderr).toBe(0);
      return out.stdout;
    };
    const below = ["empty.txt", "hello.txt", "nested", "nested/deeper", "nested/deeper/leaf.txt", "nested/link-to-hello", "nested/same-b.txt", "notes.txt", "private.txt", "random.bin", "same-a.txt", "script.sh"];
    expect(await ls("-R")).toBe(["/tmp", "/tmp/vaultik-format1-fixture", S, ...below.map((p) => `${S}/${p}`)].join("\n") + "\n");
    expect(await ls("-l")).toBe("drwxrwxrwt  0  0  0  2026-11-27 20:26:29  /tmp\n");
    expect(await ls(`${S}/nested`, "-l")).toBe(
      [
        `drwxr-xr-x  0  0    0  2020-02-03 04:05:06  ${S}/nested/deeper`,
        `lrwxrwxrwx  0  0    0  2019-01-02 03:04:05  ${S}/nested/link-to-hello -> ../hello.txt`,
        `-rw-r--r--  0  0  560  2021-06-07 08:09:10  ${S}/nested/same-b.txt`,
      ].join("\n") + "\n",
    );
    const json = JSON.parse(await ls(`${S}/notes.txt`, "--json")) as Record<string, unknown>[];
    expect(json).toEqual([
      {
        path: `${S}/notes.txt`, type: "file", implied: false, mode: 0o644, mode_string: "-rw-r--r--", uid: 0, gid: 0, user: null, group: null, size: 45,
        mtime: "2019-01-02T03:04:05.500000000Z", link_target: null, rdev: null, link_id: null, links_to: null, xattrs: [], status: null,
      },
    ]);
  });
});
