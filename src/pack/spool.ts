import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { Readable } from "node:stream";
import { mkdir, open, rm, type FileHandle } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { PutBody } from "../store/store.js";
import { writevAll } from "../util/fsio.js";

// A blob is named by the hash of its ciphertext, known only once it is complete, and blobs can
// be far larger than memory should hold. So ciphertext is spooled: kept in memory while small,
// moved to a temp file past `memoryLimit`. Only ciphertext is spooled, so no plaintext reaches
// the disk.

export interface SpoolOptions {
  memoryLimit?: number;
  dir?: string;
}

export interface SpooledBody {
  body: PutBody;
  size: number;
  sha256: Buffer;
  /** Frees memory or removes the temp file; call once the body has been stored. */
  dispose(): Promise<void>;
  /**
   * In memory: the whole buffer the body is the start of (a pack worker hands it to the main
   * thread and gets it back once stored). On disk: the temp file.
   */
  held: { memory: Buffer } | { path: string };
}

export const DEFAULT_SPOOL_MEMORY = 16 * 1024 * 1024;

// In-memory spools write into whole buffers of the memory limit's size, reused from blob to
// blob. Keeping a blob as hundreds of 64 KiB pieces until its upload ends fragments the
// allocator: the process kept growing although little was live.
const free = new Map<number, Buffer[]>();
const KEEP_FREE = 1;

function takeBuffer(size: number): Buffer {
  return free.get(size)?.pop() ?? Buffer.allocUnsafeSlow(size);
}

/** Takes back a buffer a sealed in-memory body was handed out in (SpooledBody.held), for reuse. */
export function giveBack(buf: Buffer): void {
  if (buf.length === 0) return;
  const list = free.get(buf.length) ?? [];
  if (list.length < KEEP_FREE) list.push(buf);
  free.set(buf.length, list);
}

export class Spool {
  private readonly hash = createHash("sha256");
  private buf: Buffer | undefined;
  private size = 0;
  private file: FileHandle | undefined;
  private path: string | undefined;

  constructor(private readonly options: SpoolOptions = {}) {}

  get length(): number {
    return this.size;
  }

  async write(parts: readonly Buffer[]): Promise<void> {
    const held = this.size;
    for (const p of parts) {
      this.hash.update(p);
      this.size += p.length;
    }
    if (this.file) {
      await writevAll(this.file, parts);
      return;
    }
    const limit = this.options.memoryLimit ?? DEFAULT_SPOOL_MEMORY;
    if (this.size > limit) {
      await this.spill(held, parts);
      return;
    }
    this.buf ??= takeBuffer(limit);
    let at = held;
    for (const p of parts) at += p.copy(this.buf, at);
  }

  /** Moves the `held` bytes in memory, then `more`, to a temp file. */
  private async spill(held: number, more: readonly Buffer[]): Promise<void> {
    const dir = this.options.dir ?? join(tmpdir(), "vaultik-spool");
    await mkdir(dir, { recursive: true, mode: 0o700 });
    this.path = join(dir, `blob-${process.pid}-${randomBytes(8).toString("hex")}`);
    this.file = await open(this.path, "wx", 0o600);
    await writevAll(this.file, [...(this.buf && held > 0 ? [this.buf.subarray(0, held)] : []), ...more]);
    if (this.buf) giveBack(this.buf);
    this.buf = undefined;
  }

  async seal(): Promise<SpooledBody> {
    const sha256 = this.hash.digest();
    const size = this.size;
    const { file, path } = this;
    if (!file || !path) {
      let buf: Buffer | undefined = this.buf ?? Buffer.alloc(0);
      this.buf = undefined;
      return {
        held: { memory: buf },
        body: {
          size,
          open: () => {
            if (!buf) throw new Error("spooled body was disposed");
            return Readable.from([buf.subarray(0, size)], { objectMode: false });
          },
        },
        size,
        sha256,
        dispose: async () => {
          if (buf && buf.length > 0) giveBack(buf);
          buf = undefined;
        },
      };
    }
    await file.close();
    return {
      held: { path },
      body: { size, open: () => createReadStream(path, { highWaterMark: 1 << 20 }) },
      size,
      sha256,
      dispose: () => rm(path, { force: true }),
    };
  }

  /** Throws the spooled bytes away (on abort or error). */
  async discard(): Promise<void> {
    if (this.buf) giveBack(this.buf);
    this.buf = undefined;
    if (this.file) await this.file.close().catch(() => {});
    if (this.path) await rm(this.path, { force: true });
  }
}
