import { mkdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Catalog } from "../src/catalog/db.js";
import { compilePatterns } from "../src/snapshot/find-pattern.js";
import { decodePath } from "../src/model/path-bytes.js";
import { SnapshotBuilder } from "../src/snapshot/build.js";
import { SnapshotReader } from "../src/snapshot/read.js";
import { vaultik, type CliResult } from "./helpers/cli.js";
import { s3rverCliEnv, s3rverMirroring, type S3rverHandle } from "./helpers/s3rver.js";
import { backupAt, cliKeys, localRepo, type LocalRepo } from "./helpers/setup.js";

// Issue 16 item 2: `vaultik find` through the built binary across snapshots of three hosts, each
// backed up in-process with its own tree and a fixed clock, on a directory repository and (the
// same objects) s3rver.

let dir: string;
let r: LocalRepo;
let src: string;
let server: S3rverHandle;
const ids: Record<"alpha" | "beta" | "gamma", string> = { alpha: "", beta: "", gamma: "" };

/** name (bytes as latin1) → [content size, mtime as an ISO date]. */
type Tree = Record<string, [number, string]>;
const TREES: [keyof typeof ids, number, Tree][] = [
  ["alpha", Date.UTC(2026, 10, 1, 10), {
    "docs/Report.PDF": [10, "2021-01-01"], "docs/notes.txt": [5, "2022-06-01"], "big.bin": [2000, "2023-01-01"], "bad\xff.txt": [3, "2020-05-05"],
  }],
  ["beta", Date.UTC(2026, 10, 2, 10), {
    "docs/report.pdf": [20, "2024-01-01"], "photos/cat.jpg": [3000, "2024-05-01"], "new\nline.txt": [1, "2024-02-02"],
  }],
  ["gamma", Date.UTC(2026, 10, 3, 10), { "docs/Report.PDF": [30, "2025-01-01"], "readme.md": [7, "2025-03-03"] }],
];
const DIR_TIME = Date.UTC(2019, 0, 1) / 1000;

function makeTree(source: string, tree: Tree): void {
  rmSync(source, { recursive: true, force: true });
  const at = (name: string) => Buffer.concat([Buffer.from(`${source}/`), Buffer.from(name, "latin1")]);
  for (const [name, [size, time]] of Object.entries(tree)) {
    mkdirSync(join(source, name, ".."), { recursive: true });
    writeFileSync(at(name), Buffer.alloc(size, 0x61), { mode: 0o644 });
    utimesSync(at(name), DIR_TIME, Date.parse(time) / 1000 + 0.5);
  }
  for (const d of ["docs", "photos", ""]) {
    try {
      utimesSync(join(source, d), DIR_TIME, DIR_TIME);
    } catch {
      // not in this tree
    }
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vaultik-find-"));
  r = await localRepo(dir, await cliKeys());
  src = r.source;
  for (const [host, at, tree] of TREES) {
    makeTree(r.source, tree);
    ids[host] = await backupAt(r, at, host);
  }
  server = await s3rverMirroring(r.repo, "mirror");
}, 120_000);

afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

const header = (host: keyof typeof ids) => `snapshot ${ids[host]} (host ${host}, 2026-11-0${{ alpha: 1, beta: 2, gamma: 3 }[host]} 10:00:00 UTC)`;

const STORES = [
  ["directory store", () => [r.repo], () => ({})],
  ["s3rver", () => [server.bucket, "--prefix", "mirror"], () => s3rverCliEnv(server)],
] as const;

function finder(repoArgs: () => readonly string[], env: () => Record<string, string>) {
  const find = (...args: string[]): Promise<CliResult> => vaultik(["find", ...repoArgs(), ...args], { env: { ...env(), VAULTIK_PRIVATE_KEY: r.identity } });
  const ok = async (...args: string[]): Promise<string> => {
    const out = await find(...args);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stderr).toBe("");
    return out.stdout;
  };
  return { find, ok };
}

describe.each(STORES)("vaultik find on the %s", (_name, repoArgs, env) => {
  const { ok } = finder(repoArgs, env);

  it("-i: every snapshot with a match, newest first, a header each, mode, size, mtime and path per match", async () => {
    expect(await ok("-i", "*.pdf")).toBe(
      [
        header("gamma"),
        `  -rw-r--r--  30  2025-01-01 00:00:00  ${src}/docs/Report.PDF`,
        "",
        header("beta"),
        `  -rw-r--r--  20  2024-01-01 00:00:00  ${src}/docs/report.pdf`,
        "",
        header("alpha"),
        `  -rw-r--r--  10  2021-01-01 00:00:00  ${src}/docs/Report.PDF`,
      ].join("\n") + "\n",
    );
  });

  it("--json: an array of snapshots with matches, names not in UTF-8 escaped, mtimes to the nanosecond", async () => {
    const out = await ok("bad*", "*line*", "--json");
    expect(out).toBe(
      JSON.stringify(
        [
          { snapshot: ids.beta, host: "beta", time: "2026-11-02T10:00:00.000Z", matches: [{ path: `${src}/new\\x0aline.txt`, type: "file", size: 1, mtime: "2024-02-02T00:00:00.500000000Z" }] },
          { snapshot: ids.alpha, host: "alpha", time: "2026-11-01T10:00:00.000Z", matches: [{ path: `${src}/bad\\xff.txt`, type: "file", size: 3, mtime: "2020-05-05T00:00:00.500000000Z" }] },
        ],
        null,
        2,
      ) + "\n",
    );
  });

  it("--host and --snapshot select snapshots; case matters without -i", async () => {
    expect(await ok("--host", "alpha", "-i", "report.pdf")).toBe(`${header("alpha")}\n  -rw-r--r--  10  2021-01-01 00:00:00  ${src}/docs/Report.PDF\n`);
    expect(await ok("Report.PDF", "--snapshot", ids.alpha, "--snapshot", ids.gamma.slice(0, 17))).toBe(
      `${header("gamma")}\n  -rw-r--r--  30  2025-01-01 00:00:00  ${src}/docs/Report.PDF\n\n${header("alpha")}\n  -rw-r--r--  10  2021-01-01 00:00:00  ${src}/docs/Report.PDF\n`,
    );
  });

});

// The options below do not depend on the store (a CLI run costs seconds on this host): the directory store only.
describe("vaultik find options", () => {
  const { find, ok } = finder(() => [r.repo], () => ({}));

  it("nothing found: exit 0, nothing on stdout, `no matches` on stderr", async () => {
    const out = await find("*.nothing");
    expect([out.code, out.stdout, out.stderr]).toEqual([0, "", "no matches\n"]);
    const json = await find("*.nothing", "--json");
    expect([json.code, json.stdout, json.stderr]).toEqual([0, "[]\n", "no matches\n"]);
  });

  it("--newer and --older (dates, date-times, ages), --larger and --smaller (sizes)", async () => {
    const paths = async (...args: string[]) =>
      (JSON.parse(await ok("*.*", "--json", ...args)) as { host: string; matches: { path: string }[] }[]).map((g) => [g.host, g.matches.map((m) => m.path.slice(src.length + 1))]);
    expect(await paths("--newer", "2024-01-01T00:00:01Z", "--older", "2025-02-01")).toEqual([["gamma", ["docs/Report.PDF"]], ["beta", ["new\\x0aline.txt", "photos/cat.jpg"]]]);
    expect(await paths("--older", "2021-01-01 00:00:01")).toEqual([["alpha", ["bad\\xff.txt", "docs/Report.PDF"]]]);
    expect((await find("*.*", "--newer", "1d")).stderr).toBe("no matches\n");
    expect(await paths("--older", "1d", "--larger", "1KiB")).toEqual([["beta", ["photos/cat.jpg"]], ["alpha", ["big.bin"]]]);
    expect(await paths("--smaller", "5", "--larger", "1")).toEqual([["alpha", ["bad\\xff.txt"]]]);
    const bad = await find("*", "--newer", "yesterday");
    expect([bad.code, bad.stdout]).toEqual([2, ""]);
    expect(bad.stderr).toContain('--newer: expected a date (2026-11-01)');
  });

  it("a pattern with / matches the whole path (leading / optional, ** any depth); several patterns: any; --path", async () => {
    const hosts = async (...args: string[]) =>
      (JSON.parse(await ok("--json", ...args)) as { host: string; matches: { path: string }[] }[]).map((g) => [g.host, g.matches.map((m) => m.path)]);
    expect(await hosts("**/docs/*.txt")).toEqual([["alpha", [`${src}/docs/notes.txt`]]]);
    expect(await hosts(`${src}/*.md`, `${src.slice(1)}/photos/*`)).toEqual([["gamma", [`${src}/readme.md`]], ["beta", [`${src}/photos/cat.jpg`]]]);
    // `docs/*` as a whole path is not under the snapshot root: no match.
    expect((await find("docs/*")).stderr).toBe("no matches\n");
    expect(await hosts("*", "--path", `${src}/photos`)).toEqual([["beta", [`${src}/photos`, `${src}/photos/cat.jpg`]]]);
    expect(await hosts("*", "--path", `${src}/bad\\xff.txt`)).toEqual([["alpha", [`${src}/bad\\xff.txt`]]]);
    expect(await hosts("*.[jm][pd]*", "--host", "gamma")).toEqual([["gamma", [`${src}/readme.md`]]]);
  });

  it("the repository is the first argument: PREFIX by --prefix, which --config excludes", async () => {
    const both = await vaultik(["find", "-c", r.config, "--prefix", "x", "*"], { env: { VAULTIK_PRIVATE_KEY: r.identity } });
    expect([both.code, both.stderr]).toEqual([2, "vaultik: error: --prefix: the repository comes from --config; leave out --prefix\n"]);
    const viaConfig = await vaultik(["find", "-c", r.config, "readme.md"], { env: { VAULTIK_PRIVATE_KEY: r.identity } });
    expect([viaConfig.code, viaConfig.stdout]).toEqual([0, `${header("gamma")}\n  -rw-r--r--  7  2025-03-03 00:00:00  ${src}/readme.md\n`]);
  });
});

describe("the SQL prefilter of find patterns", () => {
  it("lets through every path the glob matches (byte names, case, globstars, classes, braces), and narrows plain ones", async () => {
    const work = await mkdtemp(join(tmpdir(), "vaultik-find-prefilter-"));
    try {
      const raw = (latin1: string) => decodePath(Buffer.from(latin1, "latin1"));
      const paths = [
        "a", "a/b", "a/b.txt", "a/B.TXT", "a/b/c.txt", "x/a/b", "x%y/_z", "x%y/qz", "d/\u00e9t\u00e9.txt", "d/\u00c9T\u00c9.TXT", raw("n/bad\xff.txt"),
        raw("n/\xc3\xa9\xff"), "n/new\nline", "[br]/k", "{q}", "star*/?", ".hidden", "a/.hidden.txt",
      ];
      const db = join(work, "s.sqlite");
      const builder = new SnapshotBuilder(db, {
        id: "x", host: "h", time: "2026-01-01T00:00:00Z", sourceDirs: ["/"], vaultikVersion: "0",
        chunker: "fastcdc-2016", chunkSize: 1 << 20, chunkHash: "sha256", blobHash: "sha256", compression: "zstd",
      });
      for (const p of [...paths].sort()) builder.add({ path: p, type: "file", mode: 0o644, uid: 0, gid: 0, size: 0, mtimeNs: 0n });
      const catalog = new Catalog(join(work, "index.sqlite"));
      builder.finish(catalog);
      catalog.close();
      const reader = new SnapshotReader(db, "s");
      try {
        const patterns = [
          "*.txt", "b*", "?.txt", "*.TXT", "a/**", "**/c.txt", "a/**/c.txt", "x%y/*", "*_z", "\u00e9t\u00e9.*", "*\u00e9*", "bad?.txt", "bad*", "*line",
          "[[]br]", "[br]", "{q}", "{a,b}", "star[*]", "*\\?", "!(*.txt)", "+(a|b)", ".hidden*", "/a/*", "n/*",
        ];
        let narrowed = 0;
        for (const pattern of patterns) {
          for (const caseless of [false, true]) {
            const c = compilePatterns([pattern], caseless);
            const wanted = paths.filter((p) => c.test(p)).sort();
            const candidates = new Set([...reader.search({ names: c.names })].map((e) => e.path));
            if (candidates.size < paths.length) narrowed++;
            expect(wanted.filter((p) => !candidates.has(p)), `${pattern} ${caseless ? "-i" : ""}`).toEqual([]);
          }
        }
        // Spot checks of what the glob itself matches.
        expect(paths.filter((p) => compilePatterns(["*.txt"], true).test(p)).length).toBe(7);
        expect(paths.filter((p) => compilePatterns(["bad?.txt"], false).test(p))).toEqual([raw("n/bad\xff.txt")]);
        expect(narrowed).toBeGreaterThan(30);
      } finally {
        reader.close();
      }
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
});
