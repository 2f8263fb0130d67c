// Issue 16 item 2: `vaultik stats` through the built binary, on the directory store and on S3
// (s3rver). Every figure is checked against what the test knows independently: the sizes of
// the files it wrote (a tree with a non-UTF-8 name, a newline, a space, unicode, a symlink, a
// hard link, a duplicate and an empty directory), a second snapshot adding one file of random
// bytes, and the blobs a third, forgotten, snapshot left behind.
import { randomBytes } from "node:crypto";
import { linkSync, mkdirSync, readdirSync, symlinkSync, watch, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Io } from "../src/cli/io.js";
import { main } from "../src/cli/main.js";
import type { RepositoryStats, SnapshotStats } from "../src/cli/stats.js";
import { openFsStore } from "../src/store/fs.js";
import { formatBytes, formatDuration } from "../src/util/units.js";
import { vaultik, type CliResult } from "./helpers/cli.js";
import { mirrorToS3rver, s3rverCliEnv, startS3rver, type S3rverHandle } from "./helpers/s3rver.js";
import { backupId, cliKeys, localRepo, type LocalRepo } from "./helpers/setup.js";

// Each below the chunker's minimum (16 KiB for 64 KiB chunks): one chunk per distinct content.
const files: [string, Buffer][] = [
  ["bad\xff", Buffer.from("a name that is not UTF-8\n")],
  ["new\nline", Buffer.from("a name with a newline in it\n")],
  ["with space", Buffer.from("x".repeat(3000))],
  ["unicod\xc3\xa9.txt", Buffer.from("unicode name\n")],
  ["dup-a", Buffer.from("the same bytes twice\n")],
  ["dup-b", Buffer.from("the same bytes twice\n")],
  ["hard1", Buffer.from("a hard-linked file\n")],
];
const R = randomBytes(12 * 1024);
const Q = randomBytes(10 * 1024);

let dir: string;
let r: LocalRepo;
let s1: string;
let s2: string;
let host: string;
let server: S3rverHandle;
/** Every blob in the repository, and those only the forgotten snapshot used. */
let blobs: { count: number; bytes: number };
let orphans: { blobs: number; bytes: number };
/** What the tree holds: file entries, their sizes, distinct contents. */
let tree: { files: number; size: number; chunks: number; raw: number };

const p = (latin1: string) => Buffer.concat([Buffer.from(`${r.source}/`), Buffer.from(latin1, "latin1")]);

async function listBlobs(): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const info of openFsStore(r.repo).list("blobs/")) out.set(info.key, info.size);
  return out;
}

function ok(out: CliResult): CliResult {
  expect(out.code, out.stderr).toBe(0);
  return out;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vaultik-stats-test-"));
  r = await localRepo(dir, await cliKeys());
  mkdirSync(p("empty"));
  for (const [name, data] of files) writeFileSync(p(name), data);
  linkSync(p("hard1"), p("hard2"));
  symlinkSync("hard1", p("link"));
  const distinct = new Set(files.map(([, d]) => d.toString("latin1")));
  tree = {
    files: files.length + 1,
    size: files.reduce((n, [, d]) => n + d.length, 0) + files.find(([n]) => n === "hard1")![1].length,
    chunks: distinct.size,
    raw: [...distinct].reduce((n, d) => n + d.length, 0),
  };
  s1 = await backupId(r);
  writeFileSync(p("random.bin"), R);
  s2 = await backupId(r);
  const before = await listBlobs();
  writeFileSync(p("forgotten.bin"), Q);
  const s3 = await backupId(r);
  ok(await vaultik(["forget", r.repo, "", s3]));
  const after = await listBlobs();
  const only = [...after].filter(([k]) => !before.has(k));
  orphans = { blobs: only.length, bytes: only.reduce((n, [, size]) => n + size, 0) };
  blobs = { count: after.size, bytes: [...after.values()].reduce((n, s) => n + s, 0) };
  host = s1.split("_")[1]!;
  server = await startS3rver();
  await mirrorToS3rver(r.repo, server, "stats");
}, 180_000);

afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

type Snap = SnapshotStats;
interface Stats {
  snapshots: Snap[];
  repository: RepositoryStats;
}

const none = { blobs: 0, bytes: 0 };

/** The figures the test knows; stored sizes (compression) are taken from the output and checked for sense. */
function expectFigures(s: Stats, location: string): void {
  const [a, b] = s.snapshots as [Snap, Snap];
  const timeOf = (id: string) => `${id.slice(0, 4)}-${id.slice(4, 6)}-${id.slice(6, 8)}T${id.slice(9, 11)}:${id.slice(11, 13)}:${id.slice(13, 15)}.000Z`;
  expect(a).toEqual({
    id: s1,
    host,
    time: timeOf(s1),
    files: tree.files,
    size: tree.size,
    chunks: { chunks: tree.chunks, raw: tree.raw, stored: a.chunks.stored },
    newData: { chunks: tree.chunks, raw: tree.raw, stored: a.chunks.stored },
    // The second snapshot has every chunk of the first.
    sharedData: { chunks: tree.chunks, raw: tree.raw, stored: a.chunks.stored },
  });
  expect(b).toEqual({
    id: s2,
    host,
    time: timeOf(s2),
    files: tree.files + 1,
    size: tree.size + R.length,
    chunks: { chunks: tree.chunks + 1, raw: tree.raw + R.length, stored: b.chunks.stored },
    newData: { chunks: 1, raw: R.length, stored: b.newData.stored },
    sharedData: { chunks: tree.chunks, raw: tree.raw, stored: a.chunks.stored },
  });
  // Random bytes do not compress: a frame of them is a little larger than they are.
  expect(b.newData.stored).toBeGreaterThanOrEqual(R.length);
  expect(b.newData.stored).toBeLessThan(R.length + 256);
  expect(b.chunks.stored).toBe(a.chunks.stored + b.newData.stored);
  const uniqueRaw = tree.raw + R.length;
  const logical = 2 * tree.size + R.length;
  expect(s.repository).toEqual({
    location,
    snapshots: 2,
    storedBytes: blobs.bytes,
    blobs: blobs.count,
    uniqueChunks: { chunks: tree.chunks + 1, raw: uniqueRaw, stored: b.chunks.stored },
    logicalBytes: logical,
    dedupRatio: logical / uniqueRaw,
    compressionRatio: uniqueRaw / b.chunks.stored,
    // Just uploaded: inside the grace period, so a prune frees them only later.
    pruneCouldFree: { unreferenced: orphans, deletableNow: none, announced: none, announceNow: none, young: orphans, graceMs: 86_400_000, windowMs: 3_600_000 },
  });
  expect(orphans.blobs).toBeGreaterThan(0);
  expect(orphans.bytes).toBeGreaterThan(Q.length);
}

/** The table and repository block the text output must be, from figures already checked in JSON. */
function expectedText(s: Stats): string {
  const rows = [
    ["ID", "HOST", "TIME (UTC)", "FILES", "SIZE", "NEW", "NEW STORED", "SHARED"],
    ...s.snapshots.map((x) => [x.id, x.host, x.time.replace("T", " ").replace(".000Z", ""), String(x.files), formatBytes(x.size), formatBytes(x.newData.raw), formatBytes(x.newData.stored), formatBytes(x.sharedData.raw)]),
  ];
  const layout = (t: string[][]) => {
    const widths = t[0]!.map((_, i) => Math.max(...t.map((row) => row[i]!.length)));
    return t.map((row) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join("  "));
  };
  const x = s.repository;
  const blobsOf = (n: number, bytes: number) => `${formatBytes(bytes)} in ${n} blob${n === 1 ? "" : "s"}`;
  const o = orphans;
  return [
    ...(s.snapshots.length > 0 ? [...layout(rows), ""] : []),
    `repository ${x.location}`,
    ...layout([
      ["  snapshots:", "2"],
      ["  stored:", blobsOf(blobs.count, blobs.bytes)],
      ["  unique chunks:", `${x.uniqueChunks.chunks} (${formatBytes(x.uniqueChunks.raw)}, ${formatBytes(x.uniqueChunks.stored)} stored)`],
      ["  logical size:", `${formatBytes(x.logicalBytes)} (all snapshots)`],
      ["  dedup ratio:", x.dedupRatio!.toFixed(2)],
      ["  compression ratio:", x.compressionRatio!.toFixed(2)],
      ["  prune could free:", `${blobsOf(o.blobs, o.bytes)} no snapshot references`],
      ["    now:", `${blobsOf(0, 0)} deletable, ${blobsOf(0, 0)} to announce`],
      ["    later:", `${blobsOf(0, 0)} announced, waiting; ${blobsOf(o.blobs, o.bytes)} younger than ${formatDuration(86_400_000)} or held by a running backup`],
    ]),
    "",
  ].join("\n");
}

describe.each([
  ["the directory store", () => [r.repo, ""], () => `${r.repo}/index/`, () => ({})],
  ["S3 (s3rver)", () => [server.bucket, "stats"], () => `s3://${server.bucket}/stats/index/`, () => s3rverCliEnv(server)],
] as const)("vaultik stats on %s", (_name, repoArgs, location, env) => {
  it("per snapshot: files, size, new and shared data; per repository: stored, chunks, ratios, what prune could free (JSON and text)", async () => {
    // A private TMPDIR: the decrypted snapshot databases and the tally must be gone afterwards.
    const tmp = join(dir, `tmp-${Math.random().toString(36).slice(2)}`);
    mkdirSync(tmp);
    const run = (...args: string[]) => vaultik(["stats", ...repoArgs(), ...args], { env: { ...env(), VAULTIK_PRIVATE_KEY: r.identity, TMPDIR: tmp } });
    const json = ok(await run("--json"));
    const s = JSON.parse(json.stdout) as Stats;
    expect(s.repository.location).toBe(location());
    expectFigures(s, location());
    const text = ok(await run());
    expect(text.stdout).toBe(expectedText(s));
    expect(readdirSync(tmp)).toEqual([]);
  }, 120_000);

  it("shows the snapshots named, or those of --host, with figures that still count every snapshot", async () => {
    const withKey = { env: { ...env(), VAULTIK_PRIVATE_KEY: r.identity } };
    const all = JSON.parse(ok(await vaultik(["stats", ...repoArgs(), "--json"], withKey)).stdout) as Stats;
    const named = JSON.parse(ok(await vaultik(["stats", ...repoArgs(), s2, "--json"], withKey)).stdout) as Stats;
    expect(named).toEqual({ snapshots: [all.snapshots[1]], repository: all.repository });
    const byHost = JSON.parse(ok(await vaultik(["stats", ...repoArgs(), "--host", host, "--json"], withKey)).stdout) as Stats;
    expect(byHost).toEqual(all);
    const other = ok(await vaultik(["stats", ...repoArgs(), "--host", "no-such-host"], withKey));
    expect(other.stdout).toBe(expectedText({ ...all, snapshots: [] }));
  }, 120_000);
});

it("a key that opens no snapshot: exit 12, and no temp file left behind", async () => {
  const tmp = join(dir, "tmp-wrong-key");
  mkdirSync(tmp);
  const other = await cliKeys();
  const out = await vaultik(["stats", r.repo, "--json"], { env: { VAULTIK_PRIVATE_KEY: other.identity, TMPDIR: tmp } });
  expect(out.code, out.stderr).toBe(12);
  expect(out.stdout).toBe("");
  expect(readdirSync(tmp)).toEqual([]);
}, 120_000);

it("interrupted (SIGINT) while it reads the snapshots: exit 130, the tally and the snapshot copies are removed", async () => {
  // In process, so the interrupt is an event in the run's own order: it is sent when the first
  // snapshot copy appears in TMPDIR, with the second snapshot, the blob listing and the
  // notices still to be read after it.
  const tmp = join(dir, "tmp-interrupted");
  mkdirSync(tmp);
  let interrupt: (() => void) | undefined;
  let seen = 0;
  const watcher = watch(tmp, (_event, name) => {
    if (String(name).startsWith("vaultik-snap-") && seen++ === 0) interrupt?.();
  });
  const errors: string[] = [];
  const sink = new PassThrough().resume() as unknown as NodeJS.WriteStream;
  const io: Io = {
    stdout: sink,
    stderr: sink,
    exitCode: 0,
    out: () => {},
    err: (text) => errors.push(text),
    onInterrupt(handler) {
      interrupt = handler;
      return () => (interrupt = undefined);
    },
  };
  const saved = { TMPDIR: process.env["TMPDIR"], VAULTIK_PRIVATE_KEY: process.env["VAULTIK_PRIVATE_KEY"] };
  process.env["TMPDIR"] = tmp;
  process.env["VAULTIK_PRIVATE_KEY"] = r.identity;
  let code: number;
  try {
    code = await main(["node", "vaultik", "stats", r.repo, "--json", "--no-cache"], io);
  } finally {
    watcher.close();
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
  expect(seen).toBeGreaterThan(0);
  expect(errors).toEqual(["vaultik: error: interrupted"]);
  expect(code).toBe(130);
  expect(readdirSync(tmp)).toEqual([]);
}, 120_000);
