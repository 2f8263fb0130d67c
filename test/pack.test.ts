import { execFileSync } from "node:child_process";
import type { ChunkId } from "../src/model/ids.js";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, opendir, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateIdentity, parseIdentity, parseRecipient } from "../src/crypto/keys.js";
import { IntegrityError, NoIdentityError, NotFoundError } from "../src/errors.js";
import { frameChunks } from "../src/pack/frame.js";
import { BlobReader } from "../src/pack/reader.js";
import { compressFrame } from "../src/pack/zstd.js";
import { frameOutputBound, MAX_BLOCK_SIZE } from "../src/pack/zstd-frame.js";
import { blobKey } from "../src/repo/layout.js";
import { chunkId } from "../src/model/ids.js";
import { PackWriter, type ChunkLocation, type SealedBlob } from "../src/pack/writer.js";
import { storeBlob } from "../src/repo/blobs.js";
import { Repository } from "../src/repo/repository.js";
import { openFsStore } from "../src/store/fs.js";
import { openMemoryStore } from "../src/store/memory.js";
import { openS3Store } from "../src/store/s3.js";
import type { Store } from "../src/store/store.js";
import { zstdBomb } from "./helpers/hostile.js";
import { s3rverStoreOptions, startS3rver, type S3rverHandle } from "./helpers/s3rver.js";

const keys = await generateIdentity();
const recipient = parseRecipient(keys.recipient);
const identity = parseIdentity(keys.identity);
const stranger = parseIdentity((await generateIdentity()).identity);

function textLike(size: number, seed: number): Buffer {
  const words = ["backup", "zero", "trust", "chunk", "blob", "age", "restore", "snapshot", "\n"];
  const parts: string[] = [];
  let n = 0;
  let s = seed;
  while (n < size) {
    s = (s * 1103515245 + 12345) >>> 0;
    const w = words[s % words.length]!;
    parts.push(w, " ");
    n += w.length + 1;
  }
  return Buffer.from(parts.join("")).subarray(0, size);
}

/** Chunks of assorted sizes and kinds: empty-ish, incompressible, compressible, segment-sized. */
function sampleChunks(): Buffer[] {
  return [
    Buffer.from("x"),
    randomBytes(65_536),
    textLike(300_000, 1),
    randomBytes(200_001),
    textLike(65_537, 2),
    randomBytes(3),
    textLike(1_000_000, 3),
  ];
}

async function packAll(chunks: Buffer[], blobSizeLimit: number): Promise<SealedBlob[]> {
  const writer = new PackWriter({ recipients: [recipient], blobSizeLimit });
  const sealed: SealedBlob[] = [];
  for (const c of chunks) sealed.push(...(await writer.add(c)));
  sealed.push(...(await writer.flush()));
  return sealed;
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

const ciphertextOf = async (blob: SealedBlob): Promise<Buffer> =>
  blob.body instanceof Uint8Array ? Buffer.from(blob.body) : Buffer.concat(await collect<Buffer>(blob.body.open()));

describe("pack writer", () => {
  it("names each blob by the SHA-256 of its ciphertext and reports every chunk's location", async () => {
    const chunks = sampleChunks();
    const blobs = await packAll(chunks, 256 * 1024);
    expect(blobs.length).toBeGreaterThan(1); // the limit forced several blobs
    const locs = blobs.flatMap((b) => b.chunks);
    // Every chunk has exactly one location (small ones are appended later, in a shared frame).
    expect(locs.map((l) => l.id).sort()).toEqual(chunks.map(chunkId).sort());
    expect(locs.filter((l) => l.rawOffset > 0).length).toBeGreaterThan(0);
    for (const b of blobs) {
      const bytes = await ciphertextOf(b);
      expect(bytes.length).toBe(b.size);
      expect(bytes.length).toBeLessThanOrEqual(256 * 1024);
      expect(createHash("sha256").update(bytes).digest("hex")).toBe(b.name);
      // Frames are back to back from offset 0 of the plaintext; chunks sharing a frame sit
      // back to back inside it.
      const frames = new Map<number, ChunkLocation[]>();
      for (const l of b.chunks) frames.set(l.offset, [...(frames.get(l.offset) ?? []), l]);
      let offset = 0;
      for (const [frameOffset, members] of [...frames].sort((x, y) => x[0] - y[0])) {
        expect(frameOffset).toBe(offset);
        offset += members[0]!.length;
        let raw = 0;
        for (const m of members.sort((x, y) => x.rawOffset - y.rawOffset)) {
          expect(m.rawOffset).toBe(raw);
          raw += m.rawLength;
        }
      }
      await b.dispose();
    }
  });

  it("writes blobs that `age -d | zstd -d` turn back into the chunks, back to back", async () => {
    const chunks = sampleChunks();
    const [blob] = await packAll(chunks, 64 << 20);
    const dir = await mkdtemp(join(tmpdir(), "vaultik-pack-"));
    try {
      await writeFile(join(dir, "key.txt"), `${keys.identity}\n`);
      await writeFile(join(dir, "blob"), await ciphertextOf(blob!));
      const plain = execFileSync("sh", ["-c", "age -d -i key.txt blob | zstd -d -c"], { cwd: dir, maxBuffer: 1 << 28 });
      // In location order (small chunks share a frame appended after the large ones).
      const byId = new Map(chunks.map((c) => [chunkId(c), c]));
      const ordered = [...blob!.chunks].sort((a, b) => a.offset - b.offset || a.rawOffset - b.rawOffset);
      expect(plain.equals(Buffer.concat(ordered.map((l) => byId.get(l.id)!)))).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
      await blob!.dispose();
    }
  });

  it("spools large blobs to a temp file holding only ciphertext, and removes it on dispose", async () => {
    const spoolDir = await mkdtemp(join(tmpdir(), "vaultik-spool-"));
    const marker = Buffer.from("PLAINTEXT-MARKER-0123456789");
    const chunk = Buffer.concat(Array.from({ length: 40_000 }, () => marker));
    const writer = new PackWriter({ recipients: [recipient], blobSizeLimit: 64 << 20, spool: { memoryLimit: 64 * 1024, dir: spoolDir } });
    await writer.add(chunk);
    await writer.add(randomBytes(300_000));
    const [blob] = await writer.flush();
    if (!blob || blob.body instanceof Uint8Array) throw new Error("expected a spooled stream body");
    const files = await collect(await opendir(spoolDir));
    expect(files).toHaveLength(1);
    const onDisk = await readFile(join(spoolDir, files[0]!.name));
    expect(onDisk.includes(marker)).toBe(false);
    expect(createHash("sha256").update(onDisk).digest("hex")).toBe(blob.name);
    await blob.dispose();
    expect(await collect(await opendir(spoolDir))).toHaveLength(0);
    await rm(spoolDir, { recursive: true, force: true });
  });
});

/** Stores chunks through `store` and reads each back, by range and by whole-blob streaming. */
async function roundTrip(store: Store): Promise<void> {
  const chunks = sampleChunks();
  const blobs = await packAll(chunks, 768 * 1024);
  const locs: ChunkLocation[] = blobs.flatMap((b) => b.chunks);
  const firstBytes = await ciphertextOf(blobs[0]!);
  for (const b of blobs) expect(await storeBlob(store, b)).toBe(true);
  // Storing the same blob again is a no-op that reports "already there".
  const again = await packAll([chunks[0]!], 1 << 20);
  const replay = { ...again[0]!, name: blobs[0]!.name, size: firstBytes.length };
  expect(await storeBlob(store, { ...replay, body: firstBytes })).toBe(false);
  // An object under that name with another size is a damaged copy, never "already stored".
  await expect(storeBlob(store, { ...replay, size: firstBytes.length + 1, body: firstBytes })).rejects.toThrow(
    new RegExp(`${blobs[0]!.name}: already stored with ${firstBytes.length} bytes where this blob has ${firstBytes.length + 1}`),
  );

  const byId = new Map(chunks.map((c) => [chunkId(c), c]));
  const reader = new BlobReader(new Repository(store), [identity]);
  for (const loc of locs) {
    const got = await reader.readChunk(loc);
    expect(got.equals(byId.get(loc.id)!), `chunk ${loc.id}`).toBe(true);
  }
  for (const b of blobs) {
    const seen: Buffer[] = [];
    for await (const { loc, data } of reader.readBlob(b.name, [...b.chunks].reverse())) {
      expect(loc.blob).toBe(b.name);
      seen.push(data);
    }
    const ordered = [...b.chunks].sort((x, y) => x.offset - y.offset || x.rawOffset - y.rawOffset);
    expect(Buffer.concat(seen).equals(Buffer.concat(ordered.map((l) => byId.get(l.id)!)))).toBe(true);
  }
  const listed = (await new Repository(store).listBlobs()).map((b) => b.name);
  expect(listed.sort()).toEqual(blobs.map((b) => b.name).sort());
}

describe("blob round trip through the stores", () => {
  let server: S3rverHandle;
  let dir: string;
  beforeAll(async () => {
    server = await startS3rver();
    dir = await mkdtemp(join(tmpdir(), "vaultik-packstore-"));
  });
  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("local directory store", async () => roundTrip(openFsStore(dir)));
  it("S3 store on s3rver", async () => roundTrip(openS3Store(s3rverStoreOptions(server, "packs"))));
});

describe("blob reader refuses bad data with errors naming the object", () => {
  async function stored(): Promise<{ store: ReturnType<typeof openMemoryStore>; blob: SealedBlob; key: string }> {
    const store = openMemoryStore();
    const [blob] = await packAll([textLike(150_000, 9), randomBytes(100_000)], 64 << 20);
    await storeBlob(store, blob!);
    return { store, blob: blob!, key: blobKey(blob!.name) };
  }

  it("a wrong identity: no identity matches, naming the blob", async () => {
    const { store, blob, key } = await stored();
    const reader = new BlobReader(new Repository(store), [stranger]);
    const err = await reader.readChunk(blob.chunks[0]!).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoIdentityError);
    expect((err as Error).message).toContain(key);
    expect((err as Error).message).toMatch(/no identity matches/);
  });

  it("one flipped bit anywhere in the payload: an authentication error naming the blob", async () => {
    const { store, blob, key } = await stored();
    const original = store.objects.get(key)!.bytes;
    for (const pos of [blob.headerLength + 20, original.length - 1, Math.floor(original.length / 2), original.length - 17]) {
      const bad = Buffer.from(original);
      bad[pos]! ^= 0x04;
      store.objects.set(key, { bytes: bad, mtime: new Date() });
      const reader = new BlobReader(new Repository(store), [identity]);
      const whole = await (async () => {
        for await (const _ of reader.readBlob(blob.name, blob.chunks)) void _;
      })().catch((e: unknown) => e);
      expect(whole, `byte ${pos}`).toBeInstanceOf(IntegrityError);
      expect((whole as Error).message).toContain(key);
      expect((whole as Error).message).toMatch(/authentication failed|does not match|truncated/);
    }
    // A flipped bit in the header breaks the header MAC (or the stanza), also named.
    const bad = Buffer.from(original);
    bad[40]! ^= 0x01;
    store.objects.set(key, { bytes: bad, mtime: new Date() });
    const err = await new BlobReader(new Repository(store), [identity]).readChunk(blob.chunks[1]!).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as Error).message).toContain(key);
  });

  it("a truncated blob: streaming and ranged reads both fail naming the blob", async () => {
    const { store, blob, key } = await stored();
    const original = store.objects.get(key)!.bytes;
    store.objects.set(key, { bytes: original.subarray(0, original.length - 100), mtime: new Date() });
    const reader = new BlobReader(new Repository(store), [identity]);
    const streamed = await (async () => {
      for await (const _ of reader.readBlob(blob.name, blob.chunks)) void _;
    })().catch((e: unknown) => e);
    expect(streamed).toBeInstanceOf(IntegrityError);
    expect((streamed as Error).message).toContain(key);
    const last = blob.chunks[blob.chunks.length - 1]!;
    const ranged = await reader.readChunk(last).catch((e: unknown) => e);
    expect(ranged).toBeInstanceOf(IntegrityError);
    expect((ranged as Error).message).toContain(key);
  });

  it("a truncated blob in a directory store is caught the same way", async () => {
    const dir = await mkdtemp(join(tmpdir(), "vaultik-trunc-"));
    try {
      const store = openFsStore(dir);
      const [blob] = await packAll([randomBytes(200_000)], 64 << 20);
      await storeBlob(store, blob!);
      await truncate(join(dir, ...blobKey(blob!.name).split("/")), 1000);
      const err = await new BlobReader(new Repository(store), [identity]).readChunk(blob!.chunks[0]!).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(IntegrityError);
      expect((err as Error).message).toContain(blobKey(blob!.name));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a missing blob: not found, naming the store and key", async () => {
    const { blob, key } = await stored();
    const empty = openMemoryStore("empty");
    const err = await new BlobReader(new Repository(empty), [identity]).readChunk(blob.chunks[0]!).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as Error).message).toContain(`memory:empty ${key}`);
  });

  it("a chunk whose metadata names the wrong id is refused", async () => {
    const { store, blob } = await stored();
    const loc = { ...blob.chunks[0]!, id: "0".repeat(64) as ChunkId };
    await expect(new BlobReader(new Repository(store), [identity]).readChunk(loc)).rejects.toThrow(/does not match its id/);
  });
});

// The addon decompresses with no output limit, so a frame is bounded from its block headers
// before it is handed over (issue 14 item 2). Our own frames must always pass.
describe("chunk frames are bounded before they are decompressed", () => {
  const OBJECT = "blobs/ab/cd/abcd";
  const zeros14 = { id: chunkId(Buffer.alloc(14)), blob: "ab".repeat(32), rawOffset: 0, rawLength: 14, compression: "zstd" } as unknown as ChunkLocation;

  it("every chunk the writer packs reads back alone, its frame's bound within a block of its content", async () => {
    let seed = 7;
    const rand = (n: number): number => ((seed = (seed * 1103515245 + 12345) >>> 0) % n);
    // Small chunks of both kinds fill several shared frames; large ones get frames of their own.
    const small = Array.from({ length: 300 }, (_, i) => (i % 2 ? randomBytes(1 + rand(16_383)) : textLike(1 + rand(16_383), i)));
    const large = [textLike(128 * 1024, 1), Buffer.alloc(5 * 1024 * 1024), randomBytes(200_001), textLike(1_000_003, 2)];
    const chunks = [...small, ...large];
    const store = openMemoryStore();
    const blobs = await packAll(chunks, 64 << 20);
    for (const b of blobs) await storeBlob(store, b);
    const reader = new BlobReader(new Repository(store), [identity]);
    const byId = new Map(chunks.map((c) => [chunkId(c), c]));
    const frameContent = new Map<string, number>();
    for (const l of blobs.flatMap((b) => b.chunks)) {
      const key = `${l.blob}@${l.offset}`;
      frameContent.set(key, Math.max(frameContent.get(key) ?? 0, l.rawOffset + l.rawLength));
    }
    for (const b of blobs) {
      for (const l of b.chunks) {
        expect((await reader.readChunk(l)).equals(byId.get(l.id)!), `chunk at ${l.offset}+${l.rawOffset}`).toBe(true);
        const bound = frameOutputBound(await reader.readFrame(l), OBJECT, l.offset);
        const content = frameContent.get(`${l.blob}@${l.offset}`)!;
        expect(bound).toBeGreaterThanOrEqual(content);
        expect(bound).toBeLessThan(content + MAX_BLOCK_SIZE);
      }
      await b.dispose();
    }
  });

  it("a frame that could expand past its chunk's raw_length is refused unread (a 64 MiB RLE bomb for 14 bytes)", async () => {
    const bomb = zstdBomb(64 * 1024 * 1024);
    const err = await frameChunks(bomb, [{ ...zeros14, offset: 0, length: bomb.length }], OBJECT).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as IntegrityError).object).toBe(OBJECT);
    expect((err as Error).message).toMatch(/zstd frame at byte 0 can decompress to 67108864 bytes, more than the \d+ its chunks allow \(they declare 14\): refused unread/);
  });

  it("a chunk's frame must be exactly one frame: a second one after it is refused", async () => {
    const two = Buffer.concat([await compressFrame(Buffer.alloc(14)), await compressFrame(Buffer.alloc(1 << 20))]);
    await expect(frameChunks(two, [{ ...zeros14, offset: 4096, length: two.length }], OBJECT)).rejects.toThrow(
      /zstd frame at byte 4096 ends after \d+ of its \d+ bytes/,
    );
  });

  it("a frame asking for a window over 128 MiB is refused", async () => {
    // Window_Descriptor 0x90: 2^(10 + 18) = 256 MiB; then one raw block (last) of 14 zeros.
    const frame = Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x90]), Buffer.from([1 | (14 << 3), 0, 0]), Buffer.alloc(14)]);
    await expect(frameChunks(frame, [{ ...zeros14, offset: 0, length: frame.length }], OBJECT)).rejects.toThrow(/asks for a 268435456-byte window/);
  });

  it("a location claiming a chunk larger than any chunk can be is refused before its frame is looked at", async () => {
    const frame = await compressFrame(Buffer.alloc(14));
    const huge = { ...zeros14, offset: 0, length: frame.length, rawLength: 64 * 1024 * 1024 + 1 };
    await expect(frameChunks(frame, [huge], OBJECT)).rejects.toThrow(/claim 67108865 bytes, more than any chunk can be/);
  });
});
