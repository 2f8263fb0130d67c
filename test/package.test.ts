import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanEnv } from "./helpers/cli.js";

// What `npm pack` ships, installed and used as a user would: the package is packed from a
// checkout without dist/ (as a fresh clone is), so only its own prepack can have built it.
//
// The install lays the tarball out the way npm does (node_modules/vaultik, node_modules/.bin/
// vaultik) and links only the declared `dependencies` from this checkout's node_modules: npm
// itself cannot install offline unless its cache holds every dependency (it does not after a
// shared install), and better-sqlite3 would need its native build again. Linking just the
// declared ones still catches a runtime import of a devDependency or of a file not shipped.

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** What a fresh clone holds that packing reads (tests and benchmarks are not shipped). */
const CHECKOUT = ["package.json", "package-lock.json", "tsconfig.json", "tsconfig.build.json", "tsconfig.web.json", "scripts", "README.md", "LICENSE", "src", "bin", "docs", "examples"];

interface Manifest {
  version: string;
  main: string;
  types: string;
  bin: Record<string, string>;
  dependencies: Record<string, string>;
}

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "vaultik-pack-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** Packs a copy of the checkout without dist/; returns the tarball's path. */
async function packFreshCheckout(): Promise<string> {
  const checkout = join(tmp, "checkout");
  await mkdir(checkout);
  for (const f of CHECKOUT) await cp(join(ROOT, f), join(checkout, f), { recursive: true });
  await symlink(join(ROOT, "node_modules"), join(checkout, "node_modules"));
  const manifest = JSON.parse(await readFile(join(checkout, "package.json"), "utf8")) as Manifest;
  await run("npm", ["pack", "--pack-destination", tmp], { cwd: checkout, env: cleanEnv() });
  return join(tmp, `vaultik-${manifest.version}.tgz`);
}

/** Installs the tarball under `prefix` as npm lays it out; returns the bin's path. */
async function install(tarball: string, prefix: string): Promise<string> {
  const pkg = join(prefix, "node_modules", "vaultik");
  await mkdir(pkg, { recursive: true });
  await run("tar", ["-xzf", tarball, "-C", pkg, "--strip-components=1"]);
  const manifest = JSON.parse(await readFile(join(pkg, "package.json"), "utf8")) as Manifest;
  for (const dep of Object.keys(manifest.dependencies)) {
    const link = join(prefix, "node_modules", dep);
    await mkdir(dirname(link), { recursive: true });
    await symlink(join(ROOT, "node_modules", dep), link);
  }
  const bin = join(prefix, "node_modules", ".bin", "vaultik");
  await mkdir(dirname(bin), { recursive: true });
  await symlink(join("..", "vaultik", manifest.bin["vaultik"]!), bin);
  await chmod(join(pkg, manifest.bin["vaultik"]!), 0o755);
  return bin;
}

describe("npm pack", () => {
  // Two tests, each with its own time budget: packing runs the TypeScript build (~15 s of CPU).
  let tarball: string;
  const manifest = async () => JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as Manifest;

  it("builds dist/ before packing, and ships it with the bin but not the sources", async () => {
    tarball = await packFreshCheckout();
    const listing = (await run("tar", ["-tzf", tarball])).stdout.split("\n");
    const { main, types } = await manifest();
    for (const f of ["bin/vaultik.js", "dist/cli/main.js", main, types]) expect(listing, f).toContain(`package/${f}`);
    // The page of `vaultik serve`, built from src/serve/web with the chart library copied in:
    // the server serves only these files, never node_modules or the internet.
    for (const f of ["index.html", "assets/main.js", "assets/app.css", "assets/uPlot.esm.js", "assets/uPlot.min.css"]) expect(listing, f).toContain(`package/dist/serve/web/${f}`);
    expect(listing.filter((f) => f.startsWith("package/src/") || f.startsWith("package/test/"))).toEqual([]);
  });

  it("installed from the tarball: version, backup and restore through its bin, and the library by name", async () => {
    expect(tarball, "the pack test above did not produce a tarball").toBeDefined();
    const { version: packageVersion, types } = await manifest();
    const prefix = join(tmp, "prefix");
    const bin = await install(tarball, prefix);
    // The bin runs by its shebang, as from a shell: node must be on PATH, nothing else of ours.
    const env = cleanEnv({ PATH: `${dirname(process.execPath)}:/usr/bin:/bin` });
    const cli = (args: string[], extra: Record<string, string> = {}) => run(bin, args, { cwd: prefix, env: { ...env, ...extra } });

    const version = JSON.parse((await cli(["version", "--json"])).stdout) as { vaultik: string };
    expect(version.vaultik).toBe(packageVersion);

    const kg = (await cli(["keygen"])).stdout.split("\n");
    const identity = kg.find((l) => l.startsWith("AGE-SECRET-KEY-1"))!;
    const recipient = kg.find((l) => l.startsWith("# public key: "))!.slice("# public key: ".length);
    const source = join(tmp, "source");
    await mkdir(source);
    await writeFile(join(source, "hello.txt"), "packed and installed\n");
    const config = join(tmp, "vaultik.yml");
    await writeFile(config, `age_recipient: ${recipient}\nsource_dirs: [${source}]\nstore: ${tmp}/repo\nindex_path: ${tmp}/state/index.sqlite\n`);
    const backup = JSON.parse((await cli(["backup", config, "--json"])).stdout) as { snapshotId: string };
    await cli(["restore", `${tmp}/repo`, backup.snapshotId, `${tmp}/restored`], { VAULTIK_PRIVATE_KEY: identity });
    expect(await readFile(join(tmp, "restored", source.slice(1), "hello.txt"), "utf8")).toBe("packed and installed\n");

    // The library entry that main and types name, imported by package name.
    const pkg = join(prefix, "node_modules", "vaultik");
    expect(existsSync(join(pkg, types))).toBe(true);
    await writeFile(
      join(prefix, "use.mjs"),
      `import { Repository, openFsStore, UsageError, VERSION } from "vaultik";\n` +
        `const snaps = await new Repository(openFsStore(process.argv[2])).listSnapshots();\n` +
        `console.log(JSON.stringify({ VERSION, ids: snaps.map((s) => s.id), usage: typeof UsageError }));\n`,
    );
    const used = await run(process.execPath, [join(prefix, "use.mjs"), `${tmp}/repo`], { cwd: prefix, env });
    expect(JSON.parse(used.stdout)).toEqual({ VERSION: packageVersion, ids: [backup.snapshotId], usage: "function" });
  });
});
