// Micro-benchmark of the repository engine's stages, in MiB/s, on random and on text-like data,
// beside the age-encryption package (pure JS) as the in-process reference. Not a test: the
// figures depend on the machine; the ratio against age-encryption is the one to compare.
//
//   npm run bench:micro              256 MiB per data set
//   npm run bench:micro -- --mib 64  smaller, for a quick look

import { randomBytes } from "node:crypto";
import { cpus } from "node:os";
import { Decrypter, Encrypter } from "age-encryption";
import { decrypt, encrypt } from "../src/crypto/age.js";
import { generateIdentity, parseIdentity, parseRecipient } from "../src/crypto/keys.js";
import { chunkBuffer, chunkerParams, chunkStream } from "../src/chunk/fastcdc.js";
import { compressFrame } from "../src/pack/zstd.js";
import { PackWriter } from "../src/pack/writer.js";
import { chunkId } from "../src/pack/names.js";

const mibArg = process.argv.indexOf("--mib");
const MIB = mibArg > 0 ? Number(process.argv[mibArg + 1]) : 256;
const SIZE = MIB * 1024 * 1024;
const AGE_JS_MIB = Math.min(MIB, 32); // the pure-JS reference is slow; a sample is enough

const keys = await generateIdentity();
const recipient = parseRecipient(keys.recipient);
const identity = parseIdentity(keys.identity);
const params = chunkerParams(1024 * 1024);

function textLike(size: number): Buffer {
  // Words from a fixed vocabulary with a seeded PRNG: compresses roughly like source code/logs.
  let s = 0x9e3779b9;
  const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) >>> 8) / 0x1000000;
  const vocab = Array.from({ length: 4000 }, (_, i) => i.toString(36) + "etaoinshrdlu".slice(0, 1 + (i % 9)));
  const out = Buffer.allocUnsafe(size);
  let pos = 0;
  while (pos < size) {
    const w = `${vocab[Math.floor(rnd() * rnd() * vocab.length)]}${rnd() < 0.1 ? "\n" : " "}`;
    pos += out.write(w, pos, "latin1");
  }
  return out;
}

async function time(fn: () => Promise<unknown> | unknown): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

const rate = (bytes: number, s: number) => bytes / 1024 / 1024 / s;

async function stages(name: string, data: Buffer): Promise<Record<string, number>> {
  const r: Record<string, number> = {};
  const sample = data.subarray(0, AGE_JS_MIB * 1024 * 1024);

  let ct: Uint8Array = new Uint8Array();
  r["age-encryption encrypt"] = rate(sample.length, await time(async () => {
    const e = new Encrypter();
    e.addRecipient(keys.recipient);
    ct = await e.encrypt(sample);
  }));
  r["age-encryption decrypt"] = rate(sample.length, await time(async () => {
    const d = new Decrypter();
    d.addIdentity(keys.identity);
    await d.decrypt(ct, "uint8array");
  }));

  let ours: Buffer = Buffer.alloc(0);
  r["vaultik encrypt"] = rate(data.length, await time(() => (ours = encrypt(data, [recipient]))));
  r["vaultik decrypt"] = rate(data.length, await time(() => decrypt(ours, [identity], "bench")));

  r["sha256 (chunk ids)"] = rate(data.length, await time(() => chunkId(data)));
  r["chunk (fastcdc, whole buffer)"] = rate(data.length, await time(() => chunkBuffer(data, params)));
  r["chunk (fastcdc, streamed 1 MiB reads)"] = rate(data.length, await time(async () => {
    async function* reads() {
      for (let o = 0; o < data.length; o += 1 << 20) yield data.subarray(o, o + (1 << 20));
    }
    for await (const _ of chunkStream(reads(), params));
  }));

  const chunks = chunkBuffer(data, params);
  r["zstd -3, one at a time"] = rate(data.length, await time(async () => {
    for (const c of chunks) await compressFrame(c);
  }));
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
  console.log(`\n${name} (${MIB} MiB; age-encryption on ${AGE_JS_MIB} MiB)`);
  for (const [k, v] of Object.entries(r)) console.log(`  ${k.padEnd(40)} ${v.toFixed(0).padStart(6)} MiB/s`);
  console.log(`  ${"encrypt: vaultik / age-encryption".padEnd(40)} ${(r["vaultik encrypt"]! / r["age-encryption encrypt"]!).toFixed(1).padStart(6)} x`);
  console.log(`  ${"decrypt: vaultik / age-encryption".padEnd(40)} ${(r["vaultik decrypt"]! / r["age-encryption decrypt"]!).toFixed(1).padStart(6)} x`);
  return r;
}

console.log(`vaultik micro-benchmark — ${cpus()[0]?.model ?? "unknown CPU"}, ${cpus().length} cores, node ${process.version}`);
await stages("random data", randomBytes(SIZE));
await stages("text-like data", textLike(SIZE));
