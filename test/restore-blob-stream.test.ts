import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encrypt } from "../src/crypto/age.js";
import { generateIdentity, parseIdentity, parseRecipient } from "../src/crypto/keys.js";
import { SEALED_SEGMENT_SIZE } from "../src/crypto/stream.js";
import type { ChunkId } from "../src/model/ids.js";
import { BlobReader, type BlobSource } from "../src/pack/reader.js";
import { compressFrame } from "../src/pack/zstd.js";
import { blobKey } from "../src/repo/layout.js";
import { frameWork, type SinkFailure } from "../src/restore/sink.js";
import type { BlobJobStart } from "../src/restore/blob-job.js";
import { pseudoRandom } from "./helpers/tree.js";

// Issue 17, restore: the main thread only reads a blob and hands its bytes, untouched and by
// transfer, to a writer thread, which decrypts, cuts out the frames, decompresses, checks and
// writes them. A damaged segment stops the blob there, with the message a whole-blob read gives,
// and says how far it got, so the restorer reads the rest by ranges as before.

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vaultik-blob-stream-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const FILES = 24;

/** A blob of FILES frames (one file each, 30-80 KB: most cross a 64 KiB segment), encrypted to a fresh key, and how to restore it into `out`. */
async function blobOf(out: string) {
  const keys = await generateIdentity();
  const contents = Array.from({ length: FILES }, (_, i) => pseudoRandom(30_000 + (i % 6) * 10_000, 700 + i));
  const frames: Buffer[] = [];
  const wanted: BlobJobStart["frames"] = [];
  let offset = 0;
  for (let i = 0; i < FILES; i++) {
    const frame = await compressFrame(contents[i]!);
    const id = createHash("sha256").update(contents[i]!).digest("hex") as ChunkId;
    const finish = { size: contents[i]!.length, mode: 0o644, uid: 0, gid: 0, mtime: 1_600_000_000 };
    const loc = { id, blob: "" as never, offset, length: frame.length, rawOffset: 0, rawLength: contents[i]!.length, compression: "zstd" as const };
    wanted.push({ offset, length: frame.length, work: frameWork([{ loc, targets: [{ fileId: i, abs: join(out, `f${i}`), offset: 0, finish }] }]) });
    frames.push(frame);
    offset += frame.length;
  }
  const sealed = encrypt(Buffer.concat(frames), [parseRecipient(keys.recipient)]);
  const blob = createHash("sha256").update(sealed).digest("hex");
  return { sealed, blob, contents, wanted, identity: parseIdentity(keys.identity) };
}

/** A source that streams `bytes` in `piece`-sized buffers of their own, and remembers them. */
function sourceOf(bytes: Buffer, piece: number): BlobSource & { parts: Buffer[] } {
  const parts: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += piece) parts.push(Buffer.from(new Uint8Array(bytes.subarray(i, i + piece))));
  return {
    parts,
    openBlob: async () => Readable.from(parts),
    readBlobRange: async () => {
      throw new Error("a streamed blob is not read by ranges here");
    },
    blobObject: (name) => blobKey(name),
  };
}

async function streamed(out: string, damage?: (sealed: Buffer) => void) {
  const { Writers } = (await import("../dist/restore/writers.js")) as unknown as typeof import("../src/restore/writers.js");
  await mkdir(out);
  const b = await blobOf(out);
  damage?.(b.sealed);
  const source = sourceOf(b.sealed, 100_000);
  const failures: SinkFailure[] = [];
  let files = 0;
  const writers = new Writers({ owners: false, threads: 2, onApplied: (_, f) => (files += f), onFailed: (f) => failures.push(f) });
  try {
    const stream = writers.streamBlob({ blob: b.blob, object: blobKey(b.blob), frames: b.wanted }, 0);
    await new BlobReader(source, [b.identity]).forwardBlob(b.blob, stream);
    const end = await stream.end(false);
    await writers.drain();
    return { ...b, end, files, failures, source };
  } finally {
    await writers.close();
  }
}

describe("a blob streamed to a writer thread (compiled)", () => {
  it("is decrypted and written there: every file bit-exact, the read buffers moved, not copied", async () => {
    const out = join(dir, "intact");
    const r = await streamed(out);
    expect(r.end).toEqual({ upTo: r.wanted[FILES - 1]!.offset });
    expect(r.failures).toEqual([]);
    expect(r.files).toBe(FILES);
    for (let i = 0; i < FILES; i++) expect(readFileSync(join(out, `f${i}`)).equals(r.contents[i]!), `f${i}`).toBe(true);
    // Transferred to the thread: the main thread's buffers are detached, so it held no copy to decrypt.
    expect(r.source.parts.length).toBeGreaterThan(5);
    expect(r.source.parts.every((p) => p.buffer.byteLength === 0)).toBe(true);
  });

  it("stops at a damaged segment with the whole-blob read's message; frames before it are written, none after, and it says how far it got", async () => {
    const out = join(dir, "damaged");
    const r = await streamed(out, (sealed) => {
      // A byte inside the third segment's ciphertext (the header is under 300 bytes).
      sealed[300 + 2 * SEALED_SEGMENT_SIZE + 100]! ^= 1;
    });
    expect(r.end.error).toBe(`${blobKey(r.blob)}: age payload authentication failed in segment 2 (corrupted or altered)`);
    // A read that holds the damaged segment is lost whole (as in a whole-blob read): frames up to upTo came before it.
    const before = r.wanted.filter((f) => f.offset <= r.end.upTo);
    expect(before.length).toBeGreaterThan(0);
    expect(before[before.length - 1]!.offset + before[before.length - 1]!.length).toBeLessThanOrEqual(2 * 65536);
    expect(r.failures).toEqual([]);
    expect((await readdir(out)).sort()).toEqual(before.map((_, i) => `f${i}`).sort());
    for (let i = 0; i < before.length; i++) expect(readFileSync(join(out, `f${i}`)).equals(r.contents[i]!)).toBe(true);
  });

  it("a blob whose bytes do not match its name: every frame written, then the mismatch", async () => {
    const out = join(dir, "renamed");
    const { Writers } = (await import("../dist/restore/writers.js")) as unknown as typeof import("../src/restore/writers.js");
    await mkdir(out);
    const b = await blobOf(out);
    const other = "cd".repeat(32);
    const writers = new Writers({ owners: false, threads: 1, onApplied: () => undefined, onFailed: () => undefined });
    try {
      const stream = writers.streamBlob({ blob: other, object: blobKey(other), frames: b.wanted }, 0);
      await new BlobReader(sourceOf(b.sealed, 1 << 20), [b.identity]).forwardBlob(other, stream);
      expect(await stream.end(false)).toEqual({ upTo: b.wanted[FILES - 1]!.offset, error: `${blobKey(other)}: blob content does not match its name (SHA-256 mismatch)` });
    } finally {
      await writers.close();
    }
    expect((await readdir(out)).length).toBe(FILES);
  });
});
