import { createCipheriv, createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { chunkerParams, chunkStream, type ChunkerParams } from "../src/chunk/fastcdc.js";
import { pseudoRandom } from "./helpers/tree.js";

// Chunk boundaries are part of the repository format (docs/FORMAT.md §2): a second writer must
// cut exactly where vaultik does, or nothing deduplicates. Two guards: pinned vectors (boundaries
// and chunk hashes of fixed inputs at four chunk sizes) that catch any change of chunker, and an
// independent implementation written from FORMAT.md alone that must agree with the wasm crate.

interface Case {
  chunkSize: number;
  input: { seed?: number; zeros?: boolean; size: number };
  params: ChunkerParams;
  inputSha256: string;
  chunks: [number, number, string][];
}

const fixture = JSON.parse(readFileSync(new URL("./fixtures/fastcdc-vectors.json", import.meta.url), "utf8")) as { cases: Case[] };
const sha256 = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");
const inputOf = (c: Case): Buffer => (c.input.zeros ? Buffer.alloc(c.input.size) : pseudoRandom(c.input.size, c.input.seed!));

/** FORMAT.md §2, "gear table": AES-256-CTR keystream (zero key, zero nonce), 31-bit big-endian words. */
function gearTable(): Uint32Array {
  const stream = createCipheriv("aes-256-ctr", Buffer.alloc(32), Buffer.alloc(16)).update(Buffer.alloc(1024));
  return Uint32Array.from({ length: 256 }, (_, i) => stream.readUInt32BE(4 * i) & 0x7fffffff);
}

/** FORMAT.md §2 as a second writer would code it: the chunk lengths of `data`. */
function referenceChunks(data: Uint8Array, { min, avg, max }: ChunkerParams): number[] {
  const gear = gearTable();
  const bits = Math.round(Math.log2(avg));
  const maskS = 2 ** (bits + 1) - 1;
  const maskL = 2 ** (bits - 1) - 1;
  const lengths: number[] = [];
  let start = 0;
  while (start < data.length) {
    const remaining = data.length - start;
    let length = Math.min(remaining, max);
    if (remaining > min) {
      const normal = Math.min(avg - Math.min(min + Math.ceil(min / 2), avg), length);
      let hash = 0;
      for (let i = min; i < length; i++) {
        hash = ((hash >>> 1) + gear[data[start + i]!]!) >>> 0;
        if ((hash & (i < normal ? maskS : maskL)) === 0) {
          length = i + 1;
          break;
        }
      }
    }
    lengths.push(length);
    start += length;
  }
  return lengths;
}

async function* pieces(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

describe("FastCDC reference vectors (test/fixtures/fastcdc-vectors.json)", () => {
  it("the gear table is the one the fastcdc crate embeds (first and last words)", () => {
    const t = gearTable();
    expect([t[0], t[1], t[254], t[255]]).toEqual([0x5c95c078, 0x22408989, 0x2dce9187, 0x32e8ea7e]);
  });

  it.each(fixture.cases.map((c) => [c.chunkSize, c.input.zeros ? "zeros" : `seed ${c.input.seed}`, c] as const))(
    "chunk_size %i, %s: vaultik's streaming chunker cuts at the pinned boundaries with the pinned hashes",
    async (chunkSize, _label, c) => {
      const data = inputOf(c);
      expect(sha256(data), "the input generator is unchanged").toBe(c.inputSha256);
      expect(chunkerParams(chunkSize)).toEqual(c.params);
      const got: [number, number, string][] = [];
      let offset = 0;
      // Odd read sizes and a small window: boundaries must not depend on either.
      for await (const chunk of chunkStream(pieces(data, 77_777), chunkerParams(chunkSize), { windowSize: 3 * c.params.max })) {
        got.push([offset, chunk.length, sha256(chunk)]);
        offset += chunk.length;
      }
      expect(got).toEqual(c.chunks);
    },
  );

  it.each(fixture.cases.map((c) => [c.chunkSize, c] as const))(
    "chunk_size %i: an implementation written from FORMAT.md alone finds the same boundaries",
    (_size, c) => {
      expect(referenceChunks(inputOf(c), c.params)).toEqual(c.chunks.map(([, length]) => length));
    },
  );

  it("a non-power-of-two chunk_size rounds its mask bits to the nearest power (12288 → 2^14)", async () => {
    const data = pseudoRandom(1 << 20, 7);
    const params = chunkerParams(12288);
    const got: number[] = [];
    for await (const chunk of chunkStream(pieces(data, 1 << 16), params)) got.push(chunk.length);
    expect(got).toEqual(referenceChunks(data, params));
    expect(got.length).toBeGreaterThan(40);
  });
});
