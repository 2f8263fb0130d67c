// zstd level 3 through @mongodb-js/zstd (what vaultik uses) against the alternatives issue 17
// names: zstd-napi's reusable compressor context, and node:zlib's zstd (Node 22.15+/24), in the
// frame shapes vaultik produces; and worker postMessage round trips, on each Node binary given.
// Not a test: it answers "does an alternative win by 20% or more?" (issue 17).
//
//   npm run bench:zstd -- --node /usr/bin/node --node /opt/node24/bin/node \
//     [--zstd-napi /tmp/zstd-eval/node_modules/zstd-napi] [--mib 32] [--rounds 5] [--out FILE.md]
//     [--only mongo,napi,...] [--no-rss] [--no-messaging]
//
// Each round runs one child process per Node binary, one after the other (A B A B), and each
// child runs every candidate on every shape with the candidates' order rotated by round, so a
// burst of load on this shared host hits all of them alike. Medians over rounds are reported;
// ratios are against @mongodb-js/zstd awaited one call at a time on the first binary given.
// zstd-napi is not a dependency: install it outside the repository and pass its directory.

import { execFileSync } from "node:child_process";
import { once } from "node:events";
import { randomBytes } from "node:crypto";
import * as zlib from "node:zlib";
import { Worker } from "node:worker_threads";
import { cpus, loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { decompress as mongoDecompress } from "@mongodb-js/zstd";
import { compressFrame, DEFAULT_LEVEL } from "../src/pack/zstd.js";
import { writeFileAtomicSync } from "../src/util/fsio.js";
import { textLike } from "./data.js";
import { loadZstdNapi } from "./zstd-napi.js";

const args = process.argv.slice(2);
const opt = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const all = (name: string) => args.flatMap((a, i) => (a === name && args[i + 1] ? [args[i + 1]!] : []));
const MIB = Number(opt("--mib") ?? 32);
const ROUNDS = Number(opt("--rounds") ?? 5);
const ZSTD_NAPI = opt("--zstd-napi") ?? process.env.ZSTD_NAPI;

const SHAPES = [
  { name: "1 MiB chunks", size: 1 << 20 },
  { name: "64 KiB frames (small chunks grouped)", size: 64 << 10 },
  { name: "4 KiB frames", size: 4 << 10 },
] as const;
const DATA = ["random", "text-like"] as const;

// ---------------------------------------------------------------- candidates (child side)

interface Candidate {
  key: string;
  label: string;
  /** Compresses each frame as its own zstd frame; resolves to the output byte count. */
  run(frames: Buffer[]): Promise<number>;
  one(frame: Buffer): Promise<Buffer> | Buffer;
}

// Node 20's @types/node has no zstd in node:zlib; these are the Node 22.15+/24 signatures used.
interface ZlibZstd {
  zstdCompressSync?(buf: Buffer, options: object): Buffer;
  zstdCompress?(buf: Buffer, options: object, cb: (err: Error | null, out: Buffer) => void): void;
  createZstdCompress?(options: object): zlib.Gzip;
  constants: Record<string, number>;
}
const z = zlib as unknown as ZlibZstd;

async function inFlight(frames: Buffer[], limit: number, fn: (b: Buffer) => Promise<Buffer>): Promise<number> {
  let next = 0;
  let out = 0;
  const lane = async () => {
    while (next < frames.length) {
      const b = await fn(frames[next++]!);
      out += b.length;
    }
  };
  await Promise.all(Array.from({ length: limit }, lane));
  return out;
}

function serial(one: (b: Buffer) => Buffer): (frames: Buffer[]) => Promise<number> {
  return async (frames) => {
    let out = 0;
    for (const f of frames) out += one(f).length;
    return out;
  };
}

function awaited(one: (b: Buffer) => Promise<Buffer>): (frames: Buffer[]) => Promise<number> {
  return async (frames) => {
    let out = 0;
    for (const f of frames) out += (await one(f)).length;
    return out;
  };
}

async function candidates(): Promise<Candidate[]> {
  const list: Candidate[] = [];
  const mongo = (b: Buffer) => compressFrame(b);
  list.push({ key: "mongo", label: "@mongodb-js/zstd, awaited one at a time (current)", one: mongo, run: awaited(mongo) });
  list.push({ key: "mongo4", label: "@mongodb-js/zstd, 4 in flight on the libuv pool", one: mongo, run: (f) => inFlight(f, 4, mongo) });

  const napi = loadZstdNapi(ZSTD_NAPI);
  if (napi) {
    const cctx = new napi.Compressor();
    cctx.setParameters({ compressionLevel: DEFAULT_LEVEL });
    const reused = (b: Buffer) => cctx.compress(b);
    const fresh = (b: Buffer) => napi.compress(b, { compressionLevel: DEFAULT_LEVEL });
    list.push({ key: "napi", label: "zstd-napi Compressor, reused context, sync", one: reused, run: serial(reused) });
    list.push({ key: "napi-new", label: "zstd-napi compress(), new context per call, sync", one: fresh, run: serial(fresh) });
  }

  if (z.zstdCompressSync && z.zstdCompress && z.createZstdCompress) {
    const C = z.constants;
    const params = { [C.ZSTD_c_compressionLevel!]: DEFAULT_LEVEL };
    // By default a zlib stream emits 16 KiB pieces, each a trip through the stream machinery
    // (and the pool, async) and a concatenation: the output buffer is sized to hold the frame.
    const options = (b: Buffer) => ({ params, chunkSize: Math.max(64, b.length + (b.length >> 7) + 512) });
    const sync = (b: Buffer) => z.zstdCompressSync!(b, options(b));
    const async1 = (b: Buffer) =>
      new Promise<Buffer>((resolve, reject) => z.zstdCompress!(b, options(b), (e, out) => (e ? reject(e) : resolve(out))));
    list.push({ key: "zlib-sync", label: "node:zlib zstdCompressSync, new context per call", one: sync, run: serial(sync) });
    list.push({ key: "zlib-async4", label: "node:zlib zstdCompress, 4 in flight, new context per call", one: async1, run: (f) => inFlight(f, 4, async1) });

    // The only public way to reuse a node:zlib zstd context: one stream, a frame ended by
    // flush(ZSTD_e_end) per chunk. Asynchronous (each flush goes through the libuv pool).
    const stream = z.createZstdCompress(options(Buffer.alloc(1 << 20)));
    let parts: Buffer[] = [];
    stream.on("data", (d: Buffer) => parts.push(d));
    const viaStream = async (b: Buffer) => {
      stream.write(b);
      await new Promise<void>((resolve) => stream.flush(C.ZSTD_e_end!, () => resolve()));
      const out = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      parts = [];
      return out;
    };
    list.push({ key: "zlib-stream", label: "node:zlib one reused stream, flush(ZSTD_e_end) per frame", one: viaStream, run: awaited(viaStream) });
    // There is no public synchronous way to reuse it: zstdCompressSync and Node's private
    // one-shot path (_processChunk) both close the handle after the frame.
  }

  const only = opt("--only")?.split(",");
  if (only) list.splice(0, list.length, ...list.filter((c) => only.includes(c.key)));
  // Every candidate must produce one zstd frame per call that decodes to its input.
  const sample = [randomBytes(5000), textLike(70000), textLike(3000), randomBytes(1 << 20)];
  for (const c of list) {
    for (const s of sample) {
      const frame = await c.one(s);
      const back = await mongoDecompress(frame);
      if (!back.equals(s)) throw new Error(`${c.key} does not round-trip a ${s.length}-byte input`);
    }
  }
  return list;
}

function frames(data: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let o = 0; o < data.length; o += size) out.push(data.subarray(o, o + size));
  return out;
}

async function seconds(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

interface Timing { cand: string; label: string; shape: string; data: string; s: number; cpu: number; calls: number; bytesOut: number }
interface Messaging { name: string; us: number }

// ---------------------------------------------------------------- worker messaging (child side)

const ECHO = `const { parentPort } = require("node:worker_threads");
parentPort.on("message", (m) => parentPort.postMessage(m, m instanceof ArrayBuffer ? [m] : []));`;

async function messaging(): Promise<Messaging[]> {
  const w = new Worker(ECHO, { eval: true });
  const batch = Array.from({ length: 100 }, (_, i) => ({
    path: `usr/share/doc/package-${i}/changelog.Debian.gz`,
    size: 1000 + i,
    mtimeNs: 1700000000000000000n + BigInt(i),
    mode: 0o100644,
    chunk: randomBytes(32).toString("hex"),
  }));
  const cases: { name: string; n: number; send: (m: unknown) => unknown }[] = [
    { name: "1 MiB ArrayBuffer, transferred both ways", n: 2000, send: (m) => m ?? new ArrayBuffer(1 << 20) },
    { name: "1 MiB Uint8Array, copied both ways", n: 300, send: () => new Uint8Array(1 << 20) },
    { name: "batch of 100 small objects (per-file results)", n: 2000, send: () => batch },
  ];
  const out: Messaging[] = [];
  for (const c of cases) {
    let m: unknown;
    for (let i = 0; i < 50; i++) {
      const x = c.send(m);
      w.postMessage(x, x instanceof ArrayBuffer ? [x] : []);
      [m] = await once(w, "message");
    }
    const s = await seconds(async () => {
      for (let i = 0; i < c.n; i++) {
        const x = c.send(m);
        w.postMessage(x, x instanceof ArrayBuffer ? [x] : []);
        [m] = await once(w, "message");
      }
    });
    out.push({ name: c.name, us: (s * 1e6) / c.n });
  }
  await w.terminate();
  return out;
}

async function child(): Promise<void> {
  const round = Number(opt("--round") ?? 0);
  const input = { random: randomBytes(MIB << 20), "text-like": textLike(MIB << 20) };
  const list = await candidates();
  const rssKey = opt("--rss");
  if (rssKey) {
    // Peak RSS growth of one candidate alone, in a fresh process: after the inputs exist.
    const c = list.find((x) => x.key === rssKey);
    if (!c) throw new Error(`no candidate ${rssKey} on ${process.version}`);
    const base = process.resourceUsage().maxRSS;
    for (const shape of SHAPES) for (const d of DATA) await c.run(frames(input[d], shape.size));
    console.log(JSON.stringify({ rssGrowthKiB: process.resourceUsage().maxRSS - base, baseKiB: base }));
    return;
  }
  for (const c of list) for (const shape of SHAPES) await c.run(frames(input.random.subarray(0, 2 << 20), shape.size));
  const timings: Timing[] = [];
  for (const shape of SHAPES) {
    for (const d of DATA) {
      const f = frames(input[d], shape.size);
      for (let i = 0; i < list.length; i++) {
        const c = list[(i + round) % list.length]!;
        let bytesOut = 0;
        // CPU time of every thread of the process (the libuv pool too): what the work costs,
        // whatever else the shared host runs meanwhile.
        const cpu0 = process.cpuUsage();
        const s = await seconds(async () => { bytesOut = await c.run(f); });
        const cpuUsed = process.cpuUsage(cpu0);
        const cpu = (cpuUsed.user + cpuUsed.system) / 1e6;
        timings.push({ cand: c.key, label: c.label, shape: shape.name, data: d, s, cpu, calls: f.length, bytesOut });
      }
    }
  }
  console.log(JSON.stringify({ node: process.version, timings, messaging: args.includes("--no-messaging") ? [] : await messaging() }));
}

// ---------------------------------------------------------------- driver

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function spawnChild(node: string, extra: string[]): string {
  const tsx = import.meta.resolve("tsx");
  const script = fileURLToPath(import.meta.url);
  const only = opt("--only");
  const a = ["--import", tsx, script, "--child", "--mib", String(MIB), ...(ZSTD_NAPI ? ["--zstd-napi", ZSTD_NAPI] : []), ...(only ? ["--only", only] : []),
    ...(args.includes("--no-messaging") ? ["--no-messaging"] : []), ...extra];
  const out = execFileSync(node, a, { encoding: "utf8", maxBuffer: 64 << 20, stdio: ["ignore", "pipe", "inherit"] });
  return out.trim().split("\n").at(-1)!;
}

async function driver(): Promise<void> {
  const nodes = all("--node");
  if (nodes.length === 0) nodes.push(process.execPath);
  const version = (n: string) => execFileSync(n, ["--version"], { encoding: "utf8" }).trim();
  const versions = new Map(nodes.map((n) => [n, version(n)]));
  const lines: string[] = [];
  const say = (l = "") => { console.log(l); lines.push(l); };
  const load0 = loadavg()[0]!.toFixed(1);

  const runs = new Map<string, { node: string; timings: Timing[]; messaging: Messaging[] }[]>();
  for (let r = 0; r < ROUNDS; r++) {
    for (const n of nodes) {
      const res = JSON.parse(spawnChild(n, ["--round", String(r)])) as { node: string; timings: Timing[]; messaging: Messaging[] };
      runs.set(n, [...(runs.get(n) ?? []), res]);
      process.stderr.write(`round ${r + 1}/${ROUNDS} ${res.node} done\n`);
    }
  }

  const rss = new Map<string, number>();
  if (!args.includes("--no-rss")) {
    for (const n of nodes) {
      for (const key of new Set(runs.get(n)![0]!.timings.map((t) => t.cand))) {
        const res = JSON.parse(spawnChild(n, ["--rss", key])) as { rssGrowthKiB: number };
        rss.set(`${n}|${key}`, res.rssGrowthKiB / 1024);
      }
    }
  }

  say(`# zstd level ${DEFAULT_LEVEL}: @mongodb-js/zstd against zstd-napi and node:zlib (issue 17)`);
  say();
  say(`${cpus()[0]?.model ?? "unknown CPU"}, ${cpus().length} cores, load average ${load0} at start, ${loadavg()[0]!.toFixed(1)} at end; ${MIB} MiB per data set and shape, ${ROUNDS} rounds, medians.`);
  say(`Node binaries: ${nodes.map((n) => `${versions.get(n)} (${n})`).join(", ")}.`);
  say(`Ratio wall: the row's MiB/s over "@mongodb-js/zstd, awaited one at a time" on ${versions.get(nodes[0]!)} for the same shape and data (≥ 1.20 is the issue's bar). CPU µs/call: user+system time of all the process's threads (libuv pool included) per call, which the host's other load barely moves; ratio CPU is the baseline's CPU time over the row's.`);
  say(`Peak RSS growth: maxRSS of a fresh process running only that candidate over every shape and data set, minus maxRSS once the inputs exist.`);

  const key = (n: string, t: Timing) => `${n}|${t.cand}|${t.shape}|${t.data}`;
  const secs = new Map<string, number[]>();
  const cpuSecs = new Map<string, number[]>();
  const info = new Map<string, Timing>();
  for (const n of nodes) {
    for (const run of runs.get(n)!) {
      for (const t of run.timings) {
        secs.set(key(n, t), [...(secs.get(key(n, t)) ?? []), t.s]);
        cpuSecs.set(key(n, t), [...(cpuSecs.get(key(n, t)) ?? []), t.cpu]);
        info.set(key(n, t), t);
      }
    }
  }
  const base = nodes[0]!;
  for (const shape of SHAPES) {
    say();
    say(`## ${shape.name}`);
    say();
    say("| candidate | node | random MiB/s | wall µs/call | CPU µs/call | ratio wall | ratio CPU | text MiB/s | wall µs/call | CPU µs/call | ratio wall | ratio CPU | text out/in | peak RSS growth |");
    say(`| --- | --- | ${Array(12).fill("---:").join(" | ")} |`);
    for (const n of nodes) {
      const cands = [...new Set(runs.get(n)![0]!.timings.map((t) => t.cand))];
      for (const c of cands) {
        const cells: string[] = [];
        let label = c;
        for (const d of DATA) {
          const k = `${n}|${c}|${shape.name}|${d}`;
          const t = info.get(k)!;
          label = t.label;
          const s = median(secs.get(k)!);
          const cpu = median(cpuSecs.get(k)!);
          const sb = median(secs.get(`${base}|mongo|${shape.name}|${d}`)!);
          const cpub = median(cpuSecs.get(`${base}|mongo|${shape.name}|${d}`)!);
          const us = (x: number) => ((x * 1e6) / t.calls).toFixed(1);
          cells.push((MIB / s).toFixed(0), us(s), us(cpu), (sb / s).toFixed(2), (cpub / cpu).toFixed(2));
        }
        const tk = info.get(`${n}|${c}|${shape.name}|text-like`)!;
        const growth = rss.get(`${n}|${c}`);
        say(`| ${label} | ${versions.get(n)} | ${cells.join(" | ")} | ${(tk.bytesOut / (MIB << 20) * 100).toFixed(2)}% | ${growth === undefined ? "–" : `${growth.toFixed(0)} MiB`} |`);
      }
    }
  }

  const names = runs.get(base)![0]!.messaging.map((m) => m.name);
  if (names.length > 0) {
    say();
    say("## Worker postMessage round trips (main → worker → main), µs per round trip, median over rounds");
    say();
    say(`| message | ${nodes.map((n) => versions.get(n)).join(" | ")} |`);
    say(`| --- | ${nodes.map(() => "---:").join(" | ")} |`);
    for (const name of names) {
      const cells = nodes.map((n) => median(runs.get(n)!.map((r) => r.messaging.find((m) => m.name === name)!.us)).toFixed(1));
      say(`| ${name} | ${cells.join(" | ")} |`);
    }
  }
  const out = opt("--out");
  if (out) writeFileAtomicSync(out, `${lines.join("\n")}\n`, 0o644);
}

if (args.includes("--child")) await child();
else await driver();
