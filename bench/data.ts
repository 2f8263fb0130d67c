// Inputs shared by the micro-benchmarks, so a figure in one can be compared with another.

/** Words from a fixed vocabulary with a seeded PRNG: compresses roughly like source code/logs. */
export function textLike(size: number): Buffer {
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
