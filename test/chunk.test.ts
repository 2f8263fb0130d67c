import { createCipheriv, createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  CHUNK_SIZE_MAX,
  CHUNK_SIZE_MIN,
  chunkBuffer,
  chunkerParams,
  chunkStream,
  type ChunkerParams,
} from "../src/chunk/fastcdc.js";

const KiB = 1024;
const MiB = 1024 * KiB;

// Test data is a pure function of a seed so a failure reproduces: AES-CTR keystream.
function seededBytes(seed: string, length: number): Buffer {
  const key = createHash("sha256").update(seed).digest();
  return createCipheriv("aes-256-ctr", key, Buffer.alloc(16)).update(Buffer.alloc(length));
}

/** xorshift32: seeded read sizes. */
function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/** Yields `data` in pieces whose sizes come from `nextSize` (0 yields an empty piece). */
async function* pieces(data: Uint8Array, nextSize: () => number): AsyncGenerator<Uint8Array> {
  for (let offset = 0; offset < data.length; ) {
    const n = nextSize();
    yield data.subarray(offset, offset + n);
    offset += n;
  }
}

async function collect(chunks: AsyncIterable<Buffer>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const chunk of chunks) out.push(chunk);
  return out;
}

const lengths = (chunks: Buffer[]): number[] => chunks.map((c) => c.length);
const sha256 = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

const READERS: [string, () => () => number][] = [
  ["7-byte", () => () => 7],
  ["4 KiB", () => () => 4 * KiB],
  ["64 KiB", () => () => 64 * KiB],
  ["1 MiB", () => () => MiB],
  ["random 0..256 KiB", () => {
    const next = xorshift(42);
    return () => next() % (256 * KiB);
  }],
  ["random 1..17 bytes", () => {
    const next = xorshift(7);
    return () => 1 + (next() % 17);
  }],
];

interface Case {
  name: string;
  data: () => Buffer;
  params: ChunkerParams;
  /** undefined: the default window. */
  windows: (number | undefined)[];
  readers?: string[];
}

const CASES: Case[] = [
  {
    name: "3 MiB random, chunk_size 16 KiB",
    data: () => seededBytes("small", 3 * MiB + 12_345),
    params: chunkerParams(16 * KiB),
    windows: [undefined, 100_003],
  },
  {
    name: "12 MiB random, chunk_size 1 MiB",
    data: () => seededBytes("large", 12 * MiB + 777),
    params: chunkerParams(MiB),
    // The default window (16 MiB) covers the whole input; 1 MiB + 1 forces a dozen windows.
    windows: [undefined, MiB + 1],
    readers: ["7-byte", "4 KiB", "64 KiB", "1 MiB", "random 0..256 KiB"],
  },
  {
    name: "20 MiB random, chunk_size 64 KiB, default 8 MiB window",
    data: () => seededBytes("windows", 20 * MiB + 3),
    params: chunkerParams(64 * KiB),
    windows: [undefined],
    readers: ["64 KiB", "1 MiB", "random 0..256 KiB"],
  },
  {
    name: "5 MiB of zeros, chunk_size 16 KiB",
    data: () => Buffer.alloc(5 * MiB),
    params: chunkerParams(16 * KiB),
    windows: [undefined, 65_537],
    readers: ["64 KiB", "random 0..256 KiB"],
  },
  {
    name: "2 MiB repeating text, chunk_size 4 KiB",
    data: () => Buffer.from("the quick brown fox jumps over the lazy dog\n".repeat(48 * KiB)),
    params: chunkerParams(4 * KiB),
    windows: [undefined, 30_011],
    readers: ["4 KiB", "random 0..256 KiB"],
  },
];

describe("chunkStream matches chunkBuffer", () => {
  for (const c of CASES) {
    describe(c.name, () => {
      let data: Buffer | undefined;
      let reference: number[] | undefined;
      const setup = (): { data: Buffer; reference: number[] } => {
        data ??= c.data();
        reference ??= lengths(chunkBuffer(data, c.params));
        return { data, reference };
      };

      for (const windowSize of c.windows) {
        for (const [reader, makeReader] of READERS) {
          if (c.readers !== undefined && !c.readers.includes(reader)) continue;
          it(`${reader} reads, window ${windowSize ?? "default"}`, async () => {
            const { data, reference } = setup();
            const chunks = await collect(chunkStream(pieces(data, makeReader()), c.params, { windowSize }));
            expect(lengths(chunks)).toEqual(reference);
            // Checked only after the stream has ended: a chunk aliasing the reused window
            // would have been overwritten by then.
            expect(Buffer.concat(chunks).equals(data)).toBe(true);
          });
        }
      }
    });
  }

  it("1-byte reads on 300 KiB (chunk_size 16 KiB and 256)", async () => {
    const data = seededBytes("bytes", 300 * KiB);
    for (const [params, windowSize] of [
      [chunkerParams(16 * KiB), 20_011],
      [chunkerParams(16 * KiB), undefined],
      [chunkerParams(256), 1_500],
    ] as const) {
      const chunks = await collect(chunkStream(pieces(data, () => 1), params, { windowSize }));
      expect(lengths(chunks)).toEqual(lengths(chunkBuffer(data, params)));
      expect(Buffer.concat(chunks).equals(data)).toBe(true);
    }
  });

  it("copies the source's pieces, so a source may reuse its buffer", async () => {
    const data = seededBytes("reuse", 2 * MiB + 5);
    const params = chunkerParams(16 * KiB);
    async function* reusing(): AsyncGenerator<Uint8Array> {
      const buf = new Uint8Array(10_000);
      for (let offset = 0; offset < data.length; offset += buf.length) {
        const n = Math.min(buf.length, data.length - offset);
        buf.set(data.subarray(offset, offset + n));
        yield buf.subarray(0, n);
      }
    }
    const chunks = await collect(chunkStream(reusing(), params, { windowSize: 50_000 }));
    expect(lengths(chunks)).toEqual(lengths(chunkBuffer(data, params)));
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
  });
});

describe("an insertion changes only the chunks around it", () => {
  for (const chunkSize of [MiB, 64 * KiB]) {
    it(`20 MiB, 5 bytes inserted in the middle, chunk_size ${chunkSize / KiB} KiB`, async () => {
      const params = chunkerParams(chunkSize);
      const a = seededBytes("shift", 20 * MiB);
      const at = 10 * MiB + 12_345;
      const b = Buffer.concat([a.subarray(0, at), Buffer.from("HELLO"), a.subarray(at)]);
      const read = (d: Buffer) => collect(chunkStream(pieces(d, () => 64 * KiB), params));
      const ha = (await read(a)).map(sha256);
      const hb = (await read(b)).map(sha256);
      expect(ha.length).toBeGreaterThan(10);

      const inB = new Set(hb);
      const inA = new Set(ha);
      expect(ha.filter((h) => !inB.has(h)).length).toBeLessThanOrEqual(3);
      expect(hb.filter((h) => !inA.has(h)).length).toBeLessThanOrEqual(3);

      // Chunks ending before the insertion come out identical and in order; so do the chunks
      // after the resynchronisation point.
      const endsBefore = lengths(chunkBuffer(a, params)).reduce(
        (acc, len) => ({ end: acc.end + len, n: acc.end + len < at ? acc.n + 1 : acc.n }),
        { end: 0, n: 0 },
      ).n;
      expect(endsBefore).toBeGreaterThan(0);
      expect(hb.slice(0, endsBefore)).toEqual(ha.slice(0, endsBefore));
      let prefix = 0;
      while (prefix < ha.length && ha[prefix] === hb[prefix]) prefix++;
      let suffix = 0;
      while (suffix < ha.length && ha[ha.length - 1 - suffix] === hb[hb.length - 1 - suffix]) suffix++;
      expect(ha.length - prefix - suffix).toBeLessThanOrEqual(3);
      expect(hb.length - prefix - suffix).toBeLessThanOrEqual(3);
    });
  }
});

describe("chunk sizes", () => {
  const inputs: [string, () => Buffer][] = [
    ["random", () => seededBytes("sizes", 6 * MiB + 1)],
    ["zeros", () => Buffer.alloc(6 * MiB + 1)],
    ["text", () => Buffer.from("abcdefghij0123456789\n".repeat(300_000))],
  ];
  for (const [name, make] of inputs) {
    for (const chunkSize of [256, 16 * KiB, MiB]) {
      it(`${name}, chunk_size ${chunkSize}: min <= size <= max except the last`, async () => {
        const params = chunkerParams(chunkSize);
        const data = make();
        const chunks = await collect(chunkStream(pieces(data, () => 100 * KiB), params, { windowSize: 3 * MiB }));
        const sizes = lengths(chunks);
        const last = sizes.pop();
        expect(last).toBeGreaterThan(0);
        expect(last).toBeLessThanOrEqual(params.max);
        for (const size of sizes) {
          expect(size).toBeGreaterThanOrEqual(params.min);
          expect(size).toBeLessThanOrEqual(params.max);
        }
      });
    }
  }

  it("an input shorter than min is one chunk; empty input is none", async () => {
    const params = chunkerParams(16 * KiB);
    const small = seededBytes("tiny", 100);
    expect(lengths(chunkBuffer(small, params))).toEqual([100]);
    expect(lengths(await collect(chunkStream(pieces(small, () => 3), params)))).toEqual([100]);

    expect(chunkBuffer(new Uint8Array(0), params)).toEqual([]);
    expect(await collect(chunkStream(pieces(new Uint8Array(0), () => 1), params))).toEqual([]);
    const empties = (async function* () {
      yield new Uint8Array(0);
      yield new Uint8Array(0);
    })();
    expect(await collect(chunkStream(empties, params))).toEqual([]);
  });
});

describe("chunkerParams", () => {
  it("derives min = floor(chunk_size / 4), avg = chunk_size, max = chunk_size * 4", () => {
    expect(chunkerParams(MiB)).toEqual({ min: 256 * KiB, avg: MiB, max: 4 * MiB });
    expect(chunkerParams(64 * KiB)).toEqual({ min: 16 * KiB, avg: 64 * KiB, max: 256 * KiB });
    expect(chunkerParams(1000)).toEqual({ min: 250, avg: 1000, max: 4000 });
    expect(chunkerParams(1001)).toEqual({ min: 250, avg: 1001, max: 4004 });
    expect(chunkerParams(CHUNK_SIZE_MIN)).toEqual({ min: 64, avg: 256, max: 1024 });
    expect(chunkerParams(CHUNK_SIZE_MAX)).toEqual({ min: 4 * MiB, avg: 16 * MiB, max: 64 * MiB });
  });

  it("the limits are ones the wasm accepts", () => {
    const data = seededBytes("limits", 200 * KiB);
    for (const size of [CHUNK_SIZE_MIN, 1000, CHUNK_SIZE_MAX]) {
      const chunks = chunkBuffer(data, chunkerParams(size));
      expect(Buffer.concat(chunks).equals(data)).toBe(true);
    }
  });

  it("rejects chunk_size out of range or not an integer with a RangeError naming it", () => {
    for (const bad of [255, 0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, CHUNK_SIZE_MAX + 1, 2 ** 40]) {
      expect(() => chunkerParams(bad)).toThrow(RangeError);
      expect(() => chunkerParams(bad)).toThrow(/chunk_size/);
    }
    expect(() => chunkerParams("1024" as unknown as number)).toThrow(RangeError);
  });

  it("rejects parameters the wasm would trap on before calling it", async () => {
    const data = seededBytes("bad", 4 * KiB);
    const bad: ChunkerParams[] = [
      { min: 63, avg: 256, max: 1024 },
      { min: 64, avg: 255, max: 1024 },
      { min: 64, avg: 256, max: 1023 },
      { min: 512, avg: 256, max: 1024 },
      { min: 64, avg: 256, max: 64 * MiB + 1 },
      { min: 64.5, avg: 256, max: 1024 },
    ];
    for (const params of bad) {
      expect(() => chunkBuffer(data, params)).toThrow(RangeError);
      await expect(collect(chunkStream(pieces(data, () => KiB), params))).rejects.toThrow(RangeError);
    }
    await expect(
      collect(chunkStream(pieces(data, () => KiB), chunkerParams(KiB), { windowSize: 0 })),
    ).rejects.toThrow(RangeError);
  });

  it("stopping early closes the source", async () => {
    let closed = false;
    async function* source(): AsyncGenerator<Uint8Array> {
      try {
        for (let i = 0; ; i++) yield seededBytes(`endless ${i}`, 64 * KiB);
      } finally {
        closed = true;
      }
    }
    let n = 0;
    for await (const _ of chunkStream(source(), chunkerParams(4 * KiB), { windowSize: 256 * KiB })) {
      if (++n === 3) break;
    }
    expect(closed).toBe(true);
  });
});
