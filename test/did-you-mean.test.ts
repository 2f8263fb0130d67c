import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { vaultik } from "./helpers/cli.js";
import { mirrorToS3rver, s3rverCliEnv, startS3rver, type S3rverHandle } from "./helpers/s3rver.js";
import { backupId, cliKeys, localRepo, type LocalRepo } from "./helpers/setup.js";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { useTempDirs } from "./helpers/temp.js";

// A path that is not in the snapshot fails with the nearest paths that are (issue 16).

const tempDir = useTempDirs("vaultik-dym-");
let r: LocalRepo;
let id: string;
let server: S3rverHandle;
let root: string;

let shared: string;
beforeAll(async () => {
  const dir = (shared = await mkdtemp(join(tmpdir(), "vaultik-dym-repo-")));
  r = await localRepo(dir, await cliKeys());
  await mkdir(join(r.source, "docs"), { recursive: true });
  await mkdir(join(r.source, "photos"), { recursive: true });
  for (const f of ["docs/report.txt", "docs/Report-2.txt", "docs/notes.md", "photos/cat.jpg", Buffer.concat([Buffer.from("docs/caf"), Buffer.from([0xe9]), Buffer.from(".txt")])]) {
    await writeFile(typeof f === "string" ? join(r.source, f) : Buffer.concat([Buffer.from(r.source + "/"), f]), "x");
  }
  id = await backupId(r);
  root = r.source;
  server = await startS3rver();
  await mirrorToS3rver(r.repo, server, "mirror");
});
afterAll(async () => {
  await server?.close();
  await rm(shared, { recursive: true, force: true });
});

async function fetchFails(path: string, repoArgs: string[] = [r.repo], env: Record<string, string> = {}): Promise<string> {
  const target = join(await tempDir(), "out");
  const out = await vaultik(["fetch", ...repoArgs, id, path, target], { env: { VAULTIK_PRIVATE_KEY: r.identity, ...env } });
  expect(out.code, out.stderr).toBe(10);
  expect(out.stdout).toBe("");
  return out.stderr;
}

describe("did you mean", () => {
  it("a typo names the nearest paths, nearest first", async () => {
    expect(await fetchFails(`${root}/docs/reprot.txt`)).toBe(
      `vaultik: error: ${root}/docs/reprot.txt: is not in snapshot ${id}; did you mean:\n  ${root}/docs/report.txt\n`,
    );
  });

  it("case counts less than a letter: Report.txt suggests both spellings, the closer first", async () => {
    expect(await fetchFails(`${root}/docs/Report.txt`)).toBe(
      `vaultik: error: ${root}/docs/Report.txt: is not in snapshot ${id}; did you mean:\n  ${root}/docs/report.txt\n  ${root}/docs/Report-2.txt\n`,
    );
  });

  it("a typo in a directory name: the path from the deepest existing directory is compared", async () => {
    expect(await fetchFails(`${root}/docz/notes.md`)).toBe(
      `vaultik: error: ${root}/docz/notes.md: is not in snapshot ${id}; did you mean:\n  ${root}/docs/notes.md\n`,
    );
  });

  it("the same name in another directory is suggested", async () => {
    expect(await fetchFails(`${root}/photos/notes.md`)).toBe(
      `vaultik: error: ${root}/photos/notes.md: is not in snapshot ${id}; did you mean:\n  ${root}/docs/notes.md\n`,
    );
  });

  it("a name that is not UTF-8 is suggested in its escaped form, which fetch takes back", async () => {
    const stderr = await fetchFails(`${root}/docs/cafe.txt`);
    expect(stderr).toBe(`vaultik: error: ${root}/docs/cafe.txt: is not in snapshot ${id}; did you mean:\n  ${root}/docs/caf\\xe9.txt\n`);
    const out = await vaultik(["fetch", r.repo, id, `${root}/docs/caf\\xe9.txt`, "-"], { env: { VAULTIK_PRIVATE_KEY: r.identity } });
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toBe("x");
  });

  it("nothing close: no suggestion, a pointer to ls", async () => {
    expect(await fetchFails("/completely/elsewhere/zzzzzzzz")).toBe(
      `vaultik: error: /completely/elsewhere/zzzzzzzz: is not in snapshot ${id} (\`vaultik ls\` lists what it holds)\n`,
    );
  });

  it("the same on s3rver, and for fetch to stdout", async () => {
    const stderr = await fetchFails(`${root}/docs/reprot.txt`, [server.bucket, "mirror"], s3rverCliEnv(server));
    expect(stderr).toContain(`did you mean:\n  ${root}/docs/report.txt\n`);
    const out = await vaultik(["fetch", r.repo, id, `${root}/docs/reprot.txt`, "-"], { env: { VAULTIK_PRIVATE_KEY: r.identity } });
    expect(out.code).toBe(10);
    expect(out.stdout).toBe("");
    expect(out.stderr).toContain(`did you mean:\n  ${root}/docs/report.txt\n`);
  });

  it("restore: an --include path that matches nothing names the nearest paths; a glob does not", async () => {
    const target = join(await tempDir(), "out");
    const env = { env: { VAULTIK_PRIVATE_KEY: r.identity } };
    const typo = await vaultik(["restore", r.repo, id, target, "--include", `${root}/docs/reprot.txt`], env);
    expect(typo.code).toBe(10);
    expect(typo.stderr).toBe(`vaultik: error: --include ${root}/docs/reprot.txt: matches nothing in snapshot ${id}; did you mean:\n  ${root}/docs/report.txt\n`);
    const glob = await vaultik(["restore", r.repo, id, target, "--include", "*.pdf"], env);
    expect(glob.code).toBe(10);
    expect(glob.stderr).toBe(`vaultik: error: --include *.pdf: matches nothing in snapshot ${id}\n`);
  });
});
