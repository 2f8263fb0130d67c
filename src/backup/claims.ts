// Which chunks this run has already taken on, shared by every pack worker without a message:
// an open-addressing table of chunk ids in a SharedArrayBuffer, claimed with Atomics. The first
// worker to claim a chunk packs and stores it; any other only references it, so two workers
// never store the same chunk in one run, and none waits for another (a claim is a few atomic
// operations, never a lock held across work).
//
// A slot holds the first 16 bytes of the chunk's SHA-256 as four 32-bit words, with the lowest
// bit of the first and last forced to 1 so a written word is never 0 (the empty mark): 126 bits
// of the id, far more than enough to tell apart the chunks of one run. A writer takes a slot by
// compare-and-swap on word 0 and publishes it by storing word 3 last; a reader that finds word
// 0 matching waits (a few instructions) until word 3 is there before it compares the rest.
//
// The table has a fixed size from the memory budget. Past 3/4 full, claim() answers "new"
// without recording: the chunk may then be stored twice in this run (the catalog keeps the
// first), which costs space, never correctness.

const WORDS = 4;
const MAX_LOAD = 0.75;

export type Claim = "new" | "taken";

export class ChunkClaims {
  readonly buffer: SharedArrayBuffer;
  private readonly words: Int32Array;
  private readonly mask: number;
  private readonly limit: number;
  /** Slots used, across threads: word 0 of a header slot kept apart from the table. */
  private readonly used: Int32Array;

  /** A table of `slots` (a power of two), or one over `buffer` made by another thread. */
  constructor(slots: number | SharedArrayBuffer) {
    if (typeof slots === "number") {
      if (!Number.isInteger(Math.log2(slots))) throw new RangeError(`claim table size must be a power of two, got ${slots}`);
      this.buffer = new SharedArrayBuffer((slots + 1) * WORDS * 4);
    } else this.buffer = slots;
    const all = new Int32Array(this.buffer);
    this.used = all.subarray(0, 1);
    this.words = all.subarray(WORDS);
    const count = this.words.length / WORDS;
    this.mask = count - 1;
    this.limit = Math.floor(count * MAX_LOAD);
  }

  /** Bytes a table of `slots` slots takes. */
  static bytes(slots: number): number {
    return (slots + 1) * WORDS * 4;
  }

  /** "new" when no one in this run claimed `hash` before (the caller stores it), else "taken". */
  claim(hash: Uint8Array): Claim {
    const view = new DataView(hash.buffer, hash.byteOffset, 16);
    const k0 = view.getInt32(0, true) | 1;
    const k1 = view.getInt32(4, true);
    const k2 = view.getInt32(8, true);
    const k3 = view.getInt32(12, true) | 1;
    const w = this.words;
    for (let i = (k1 ^ k2) & this.mask, probes = 0; probes <= this.mask; i = (i + 1) & this.mask, probes++) {
      const at = i * WORDS;
      let first = Atomics.load(w, at);
      if (first === 0) {
        if (Atomics.load(this.used, 0) >= this.limit) return "new";
        first = Atomics.compareExchange(w, at, 0, k0);
        if (first === 0) {
          Atomics.add(this.used, 0, 1);
          Atomics.store(w, at + 1, k1);
          Atomics.store(w, at + 2, k2);
          Atomics.store(w, at + 3, k3);
          return "new";
        }
      }
      if (first !== k0) continue;
      // Same first word: wait for the writer to publish the rest (it is between two stores).
      let last = Atomics.load(w, at + 3);
      while (last === 0) last = Atomics.load(w, at + 3);
      if (last === k3 && Atomics.load(w, at + 1) === k1 && Atomics.load(w, at + 2) === k2) return "taken";
    }
    return "new";
  }
}
