// Micro-benchmark of the repository engine's stages, in MiB/s, on random and on text-like data,
// beside the age-encryption package (pure JS) as the in-process reference. Not a test: the
// figures depend on the machine; the ratio against age-encryption is the one to compare.
//
//   npm run bench:micro              256 MiB per data set
//   npm run bench:micro -- --mib 64  smaller, for a quick look
//   … -- --zstd-napi DIR             also zstd-napi's reused context (installed outside the
//                                    repository: bench/zstd-alternatives.ts, issue 17)

import { randomBytes } from "node:crypto";
import { cpus } from "node:os";
import { Decrypter, Encrypter } from "age-encryption";
import { AgeDecryptor, AgeEncryptor, decrypt, encrypt } from "../src/crypto/age.js";
import { generateIdentity, parseIdentity, parseRecipient } from "../src/crypto/keys.js";
import { chunkBuffer, chunkerParams, chunkStream } from "../src/chunk/fastcdc.js";
import { compressFrame } from "../src/pack/zstd.js";
import { PackWriter } from "../src/pack/writer.js";
import { chunkId } from "../src/model/ids.js";
import { textLike } from "./data.js";
import { loadZstdNapi } from "./zstd-napi.js";

const mibArg = process.argv.indexOf("--mib");
const MIB = mibArg > 0 ? Number(process.argv[mibArg + 1]) : 256;
const SIZE = MIB * 1024 * 1024;
const AGE_JS_MIB = Math.min(MIB, 32); // the pure-JS reference is slow; a sample is enough
const napiArg = process.argv.indexOf("--zstd-napi");
const zstdNapi = loadZstdNapi(napiArg > 0 ? process.argv[napiArg + 1] : undefined);

const keys = await generateIdentity();
const recipient = parseRecipient(keys.recipient);
const identity = parseIdentity(keys.identity);
const params = chunkerParams(1024 * 1024);

async function time(fn: () => Promise<unknown> | unknown): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

const rate = (bytes: number, s: number) => bytes / 1024 / 1024 / s;

/** Median of three timed runs: one run on a shared machine says little. */
async function median(fn: () => Promise<unknown> | unknown): Promise<number> {
  const runs = [await time(fn), await time(fn), await time(fn)].sort((a, b) => a - b);
  return runs[1]!;
}

async function stages(name: string, data: Buffer, quiet = false): Promise<Record<string, number>> {
  const r: Record<string, number> = {};
  const sample = data.subarray(0, AGE_JS_MIB * 1024 * 1024);

  let ct: Uint8Array = new Uint8Array();
  r["age-encryption encrypt"] = rate(sample.length, await median(async () => {
    const e = new Encrypter();
    e.addRecipient(keys.recipient);
    ct = await e.encrypt(sample);
  }));
  r["age-encryption decrypt"] = rate(sample.length, await median(async () => {
    const d = new Decrypter();
    d.addIdentity(keys.identity);
    await d.decrypt(ct, "uint8array");
  }));

  // The real path streams: the pack writer pushes frames into an encryptor and spools what
  // comes out; restore pushes store reads into a decryptor. One-shot calls add a whole-object
  // concatenation on top, reported separately.
  const ours: Buffer = encrypt(data, [recipient]);
  r["vaultik encrypt (streamed, 1 MiB pushes)"] = rate(data.length, await median(() => {
    const e = new AgeEncryptor([recipient]);
    for (let o = 0; o < data.length; o += 1 << 20) e.push(data.subarray(o, o + (1 << 20)));
    e.finish();
  }));
  r["vaultik decrypt (streamed, 1 MiB pushes)"] = rate(data.length, await median(() => {
    const d = new AgeDecryptor([identity], "bench");
    for (let o = 0; o < ours.length; o += 1 << 20) d.push(ours.subarray(o, o + (1 << 20)));
    d.finish();
  }));
  r["vaultik encrypt (one-shot, concatenated)"] = rate(data.length, await median(() => encrypt(data, [recipient])));
  r["vaultik decrypt (one-shot, concatenated)"] = rate(data.length, await median(() => decrypt(ours, [identity], "bench")));

  r["sha256 (chunk ids)"] = rate(data.length, await time(() => chunkId(data)));
  r["chunk (fastcdc, whole buffer)"] = rate(data.length, await time(() => chunkBuffer(data, params)));
  r["chunk (fastcdc, streamed 1 MiB reads)"] = rate(data.length, await time(async () => {
    async function* reads() {
      for (let o = 0; o < data.length; o += 1 << 20) yield data.subarray(o, o + (1 << 20));
    }
    for await (const _ of chunkStream(reads(), params));
  }));

  const chunks = chunkBuffer(data, params);
  const oneAtATime = async () => {
    for (const c of chunks) await compressFrame(c);
  };
  if (zstdNapi) {
    // The comparison issue 17 asks for: alternated A B A B, medians of five.
    const cctx = new zstdNapi.Compressor();
    cctx.setParameters({ compressionLevel: 3 });
    const a: number[] = [];
    const b: number[] = [];
    for (let i = 0; i < 5; i++) {
      a.push(await time(oneAtATime));
      b.push(await time(() => chunks.forEach((c) => cctx.compress(c))));
    }
    const mid = (xs: number[]) => xs.sort((x, y) => x - y)[2]!;
    r["zstd -3, one at a time"] = rate(data.length, mid(a));
    r["zstd-napi -3, reused context, one at a time"] = rate(data.length, mid(b));
  } else {
    r["zstd -3, one at a time"] = rate(data.length, await time(oneAtATime));
  }
  r["zstd -3, all cores"] = rate(data.length, await time(() => Promise.all(chunks.map((c) => compressFrame(c)))));

  r["pack path (chunk+hash+zstd+age)"] = rate(data.length, await time(async () => {
    const w = new PackWriter({ recipients: [recipient], blobSizeLimit: 64 << 20, spool: { memoryLimit: 1 << 30 } });
    const inFlight: Promise<unknown>[] = [];
    for (const c of chunkBuffer(data, params)) {
      inFlight.push(w.add(c).then((blobs) => Promise.all(blobs.map((b) => b.dispose()))));
      if (inFlight.length >= 4) await inFlight.shift();
    }
    await Promise.all(inFlight);
    for (const b of await w.flush()) await b.dispose();
  }));
  if (quiet) return r;
  console.log(`\n${name} (${(data.length / 1048576).toFixed(0)} MiB; age-encryption on ${(sample.length / 1048576).toFixed(0)} MiB)`);
  for (const [k, v] of Object.entries(r)) console.log(`  ${k.padEnd(44)} ${v.toFixed(0).padStart(6)} MiB/s`);
  const ratio = (a: string, b: string) => (r[a]! / r[b]!).toFixed(1).padStart(6);
  console.log(`  ${"encrypt: vaultik / age-encryption".padEnd(44)} ${ratio("vaultik encrypt (streamed, 1 MiB pushes)", "age-encryption encrypt")} x`);
  console.log(`  ${"decrypt: vaultik / age-encryption".padEnd(44)} ${ratio("vaultik decrypt (streamed, 1 MiB pushes)", "age-encryption decrypt")} x`);
  return r;
}

// Warm-up: JIT, wasm instantiation and the libuv pool, so the first data set is not penalised.
await stages("warm-up", randomBytes(16 << 20), true);
console.log(`vaultik micro-benchmark — ${cpus()[0]?.model ?? "unknown CPU"}, ${cpus().length} cores, node ${process.version}`);
await stages("random data", randomBytes(SIZE));
await stages("text-like data", textLike(SIZE));
