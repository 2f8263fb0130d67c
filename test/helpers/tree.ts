import { createHash, randomBytes } from "node:crypto";
import { chmod, lstat, lutimes, mkdir, readdir, readFile, readlink, symlink, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** A string that appears in generated files, so tests can prove the bucket never holds it. */
export const MARKER = "VAULTIK-PLAINTEXT-MARKER-7f3a9c";
export const UNICODE_NAME = "résumé ☃ 日本語.txt";
export const LONG_NAME = `${"long-name-".repeat(24)}end`; // 243 bytes, under NAME_MAX

export interface TreeOptions {
  /** Chunk size the repository uses, to make files of exactly boundary sizes. */
  chunkSize: number;
  /** Size of the big file; the issue asks for 50 MiB. */
  bigFileSize: number;
}

/** Deterministic pseudo-random bytes: cheaper than randomBytes for tens of MiB, and repeatable. */
export function pseudoRandom(size: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let block = createHash("sha256").update(`seed-${seed}`).digest();
  for (let i = 0; i < size; i += 32) {
    block = createHash("sha256").update(block).digest();
    block.copy(out, i, 0, Math.min(32, size - i));
  }
  return out;
}

/**
 * Writes the tree the issue lists: empty files, boundary sizes, a big file, unicode and long
 * names, deep directories, symlinks, empty directories, modes and mtimes.
 */
export async function makeTree(root: string, o: TreeOptions): Promise<void> {
  const min = Math.floor(o.chunkSize / 4);
  const max = o.chunkSize * 4;
  await mkdir(join(root, "docs", "nested"), { recursive: true });
  await writeFile(join(root, "empty.txt"), "");
  await writeFile(join(root, "docs", "marker.txt"), `${MARKER}\n`.repeat(1000));
  await writeFile(join(root, "docs", UNICODE_NAME), `unicode ${MARKER}`);
  await writeFile(join(root, "docs", LONG_NAME), "long");
  for (const [i, size] of [min - 1, min, min + 1, o.chunkSize, max - 1, max, max + 1, 2 * max].entries()) {
    await writeFile(join(root, "docs", "nested", `boundary-${size}.bin`), pseudoRandom(size, 100 + i));
  }
  await writeFile(join(root, "big.bin"), pseudoRandom(o.bigFileSize, 7));
  let deep = join(root, "deep");
  for (let i = 0; i < 24; i++) deep = join(deep, `level-${i}`);
  await mkdir(deep, { recursive: true });
  await writeFile(join(deep, "bottom.txt"), "at the bottom");
  await mkdir(join(root, "empty-dir", "also-empty"), { recursive: true });
  await symlink("docs/marker.txt", join(root, "link-relative"));
  await symlink("/nonexistent/target", join(root, "link-dangling"));
  await symlink("docs", join(root, "link-to-dir"));
  await writeFile(join(root, "private.txt"), "secret-ish");
  await chmod(join(root, "private.txt"), 0o600);
  await writeFile(join(root, "script.sh"), "#!/bin/sh\necho hi\n");
  await chmod(join(root, "script.sh"), 0o755);
  await writeFile(join(root, "readonly.txt"), "read only");
  await chmod(join(root, "readonly.txt"), 0o444);
  await mkdir(join(root, "restricted-dir"));
  await writeFile(join(root, "restricted-dir", "inside.txt"), "inside");
  await chmod(join(root, "restricted-dir"), 0o700);
  // Fixed past times, set last (children first) so creating entries does not move them.
  const past = new Date("2021-03-04T05:06:07.123Z");
  await utimes(join(root, "docs", "marker.txt"), past, past);
  await utimes(join(root, "big.bin"), past, new Date("2020-01-02T03:04:05.678Z"));
  await lutimes(join(root, "link-relative"), past, new Date("2019-05-06T07:08:09Z"));
  await utimes(join(root, "empty-dir", "also-empty"), past, past);
  await utimes(join(root, "empty-dir"), past, new Date("2018-01-01T00:00:00Z"));
  await utimes(join(root, "docs", "nested"), past, past);
}

export interface TreeEntry {
  type: "file" | "dir" | "symlink";
  mode: number;
  /** mtime in microseconds: what survives a restore through utimes. */
  mtimeUs: bigint;
  size: number;
  sha256?: string;
  target?: string;
  uid: number;
  gid: number;
}

/** Everything a restore must reproduce, keyed by path relative to `root`. */
export async function describeTree(root: string, options: { times?: boolean } = {}): Promise<Map<string, TreeEntry>> {
  const out = new Map<string, TreeEntry>();
  async function visit(dir: string, rel: string): Promise<void> {
    for (const name of (await readdir(dir)).sort()) {
      const abs = join(dir, name);
      const r = rel === "" ? name : `${rel}/${name}`;
      const st = await lstat(abs, { bigint: true });
      const base = {
        mode: Number(st.mode & 0o7777n),
        mtimeUs: options.times === false ? 0n : st.mtimeNs / 1000n,
        uid: Number(st.uid),
        gid: Number(st.gid),
      };
      if (st.isSymbolicLink()) out.set(r, { ...base, type: "symlink", size: 0, target: await readlink(abs) });
      else if (st.isDirectory()) {
        out.set(r, { ...base, type: "dir", size: 0 });
        await visit(abs, r);
      } else {
        const data = await readFile(abs);
        out.set(r, { ...base, type: "file", size: data.length, sha256: createHash("sha256").update(data).digest("hex") });
      }
    }
  }
  await visit(root, "");
  return out;
}

export { randomBytes };
