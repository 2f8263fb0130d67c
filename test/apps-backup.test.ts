import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { vaultik } from "./helpers/cli.js";
import { cliKeys } from "./helpers/setup.js";

// `apps:` and `hostname:` through the built CLI (issue 19): a one-shot backup runs every app in
// turn, ids carry each app's host, the shared index keeps each app's unchanged files unchanged,
// and prune applies each app's own retention.

let keys: { identity: string; recipient: string };
let dir: string;

beforeAll(async () => {
  keys = await cliKeys();
});

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "vaultik-apps-"));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface AppSummary {
  app: string;
  ok: boolean;
  snapshotId?: string;
  filesNew?: number;
  filesUnchanged?: number;
  error?: string;
}

async function tree(name: string, files: Record<string, string>): Promise<string> {
  const root = join(dir, name);
  await mkdir(root, { recursive: true });
  for (const [path, text] of Object.entries(files)) await writeFile(join(root, path), text);
  return root;
}

async function config(body: string): Promise<string> {
  const path = join(dir, "vaultik.yml");
  await writeFile(path, `age_recipient: ${keys.recipient}\nstore: ${join(dir, "repo")}\nindex_path: ${dir}/state/index.sqlite\nchunk_size: 64KiB\n${body}`);
  return path;
}

async function backup(cfg: string, ...args: string[]): Promise<{ code: number | null; apps: AppSummary[]; stderr: string }> {
  const r = await vaultik(["backup", cfg, "--json", ...args]);
  return { code: r.code, stderr: r.stderr, apps: r.stdout === "" ? [] : (JSON.parse(r.stdout) as { apps: AppSummary[] }).apps };
}

async function snapshots(): Promise<{ id: string; host: string }[]> {
  const r = await vaultik(["snapshots", join(dir, "repo"), "--json"]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { id: string; host: string }[];
}

async function lsPaths(id: string): Promise<string[]> {
  const r = await vaultik(["ls", join(dir, "repo"), id, "-R"], { env: { VAULTIK_PRIVATE_KEY: keys.identity } });
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.split("\n").filter((l) => l.endsWith(".txt")).map((l) => l.split("/").pop()!).sort();
}

const TWO_APPS = (web: string, db: string, extra = "") =>
  `hostname: nas\napps:\n  - name: web\n    source_dirs: [${web}]\n${extra}  - name: db\n    source_dirs: [${db}]\n    retention: {keep_last: 2}\nretention: {keep_last: 1}\n`;

describe("apps: in one-shot backups", () => {
  it("hostname: names the host in the snapshot id of a config without apps", async () => {
    const src = await tree("src", { "a.txt": "a" });
    const cfg = await config(`hostname: nas-1\nsource_dirs: [${src}]\n`);
    const r = await vaultik(["backup", cfg, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { snapshotId: string }).snapshotId).toMatch(/^\d{8}T\d{6}Z_nas-1_[0-9a-f]{8}$/);
  });

  it("backs up every app in turn, each as its own host with its own files; --app NAME only that one", async () => {
    const web = await tree("web", { "index.txt": "w1", "style.txt": "w2" });
    const db = await tree("db", { "rows.txt": "d1" });
    const cfg = await config(TWO_APPS(web, db));
    const all = await backup(cfg);
    expect(all.code, all.stderr).toBe(0);
    expect(all.apps.map((a) => [a.app, a.ok])).toEqual([["web", true], ["db", true]]);
    const listed = await snapshots();
    expect(listed.map((s) => s.host).sort()).toEqual(["nas-db", "nas-web"]);
    const byHost = new Map(listed.map((s) => [s.host, s.id]));
    expect(await lsPaths(byHost.get("nas-web")!)).toEqual(["index.txt", "style.txt"]);
    expect(await lsPaths(byHost.get("nas-db")!)).toEqual(["rows.txt"]);

    const one = await backup(cfg, "--app", "db");
    expect(one.code, one.stderr).toBe(0);
    expect(one.apps.map((a) => a.app)).toEqual(["db"]);
    expect((await snapshots()).filter((s) => s.host === "nas-db")).toHaveLength(2);

    const unknown = await vaultik(["backup", cfg, "--app", "nope"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/nope/);
  });

  it("one failing app fails the run (non-zero exit) and the others are still backed up", async () => {
    const web = await tree("web", { "index.txt": "w1" });
    const db = await tree("db", { "rows.txt": "d1" });
    const cfg = await config(TWO_APPS(web, db, "    hooks: {pre_backup: exit 3}\n"));
    const r = await backup(cfg);
    expect(r.code).toBe(1);
    expect(r.apps.map((a) => [a.app, a.ok])).toEqual([["web", false], ["db", true]]);
    expect(r.apps[0]!.error).toMatch(/pre_backup/);
    expect((await snapshots()).map((s) => s.host)).toEqual(["nas-db"]);
  });

  it("another app's full run in the shared index does not make an app's unchanged files new again", async () => {
    const web = await tree("web", { "index.txt": "w1", "style.txt": "w2" });
    const db = await tree("db", { "rows.txt": "d1" });
    const cfg = await config(TWO_APPS(web, db));
    expect((await backup(cfg, "--app", "web")).apps[0]).toMatchObject({ ok: true, filesNew: 2 });
    expect((await backup(cfg, "--app", "db")).apps[0]).toMatchObject({ ok: true, filesNew: 1 });
    expect((await backup(cfg, "--app", "web")).apps[0]).toMatchObject({ ok: true, filesNew: 0, filesUnchanged: 2 });
  });

  it("prune --config keeps each app's own retention: keep_last 1 for web (top-level default), 2 for db", async () => {
    const web = await tree("web", { "index.txt": "w1" });
    const db = await tree("db", { "rows.txt": "d1" });
    const cfg = await config(TWO_APPS(web, db));
    for (let i = 0; i < 3; i++) {
      await writeFile(join(web, "index.txt"), `w${i}`);
      const r = await backup(cfg);
      expect(r.code, r.stderr).toBe(0);
    }
    expect(await snapshots()).toHaveLength(6);
    const pruned = await vaultik(["prune", "--config", cfg, "--grace", "0s", "--safety-window", "0s"], { env: { VAULTIK_PRIVATE_KEY: keys.identity } });
    expect(pruned.code, pruned.stderr).toBe(0);
    const left = await snapshots();
    expect(left.filter((s) => s.host === "nas-web")).toHaveLength(1);
    expect(left.filter((s) => s.host === "nas-db")).toHaveLength(2);
  });
});
