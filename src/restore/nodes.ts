import { execFileSync } from "node:child_process";
import { renameSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { IntegrityError, LocalStateError } from "../errors.js";
import { displayPath, fsPath, hasRawBytes } from "../model/path-bytes.js";

// FIFOs and device nodes. Node has no mkfifo or mknod, so coreutils' mknod makes each one, under
// a temporary ASCII name (a command line cannot carry a name that is not UTF-8), mode 0600 until
// the restore sets the recorded one; it is then renamed to its name, which also replaces whatever
// an earlier restore left there. Creating device nodes needs root (CAP_MKNOD): the restorer
// does not try without it, and takes a refusal as root (a container's or user namespace's
// root has no CAP_MKNOD) as the same skip.

let made = 0;

/** mknod was not permitted to make a device node (no CAP_MKNOD). */
export class DeviceNotPermitted extends LocalStateError {}

export type NodeType = "fifo" | "chardev" | "blockdev";

/**
 * Makes a node of `type` at `abs` (an internal path string) from a temporary name in the same
 * directory, or in `root` (the restore target, same file system) when the directory's name has
 * bytes that are not UTF-8. `prepare` runs on the temporary name before the rename.
 */
export function makeNode(abs: string, type: NodeType, rdev: number | null, root: string, object: string, prepare: (tmp: string) => void): void {
  const args = type === "fifo" ? ["p"] : [type === "chardev" ? "c" : "b", ...majorMinor(rdev, abs, object)];
  const dir = dirname(abs);
  const tmp = join(hasRawBytes(dir) ? root : dir, `.vaultik-node-${process.pid}-${++made}`);
  try {
    // The C locale: the refusal is recognised by its message.
    execFileSync("mknod", ["-m", "0600", tmp, ...args], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, LC_ALL: "C" } });
  } catch (err) {
    const stderr = String((err as { stderr?: Buffer }).stderr ?? "").trim();
    const Refusal = type !== "fifo" && /Operation not permitted/.test(stderr) ? DeviceNotPermitted : LocalStateError;
    throw new Refusal(displayPath(abs), `cannot create this ${type}: ${stderr || (err as Error).message}`, { cause: err });
  }
  try {
    prepare(tmp);
    renameSync(tmp, fsPath(abs));
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** Linux's encoding of st_rdev (glibc gnu_dev_major/minor): 12 bits of major and 20 of minor, split. */
export function majorMinor(rdev: number | null, abs: string, object: string): [string, string] {
  if (rdev === null || !Number.isSafeInteger(rdev) || rdev < 0) {
    throw new IntegrityError(object, `${displayPath(abs)}: a device node without a valid device number (${String(rdev)})`);
  }
  const d = BigInt(rdev);
  const major = ((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn);
  const minor = (d & 0xffn) | ((d >> 12n) & ~0xffn);
  return [String(major), String(minor)];
}
