import { createCipheriv, createDecipheriv } from "node:crypto";
import { IntegrityError } from "../errors.js";
import { hkdf } from "./header.js";

// The age payload: a 16-byte random nonce, then the plaintext in 64 KiB segments, each sealed
// with ChaCha20-Poly1305 under HKDF-SHA256(file key, salt = nonce, info = "payload"). The
// 12-byte AEAD nonce is an 11-byte big-endian segment counter and a flag byte that is 1 only
// on the final segment, so truncation and reordering are detected. Only the final segment may
// be shorter than 64 KiB, and it may be empty only when the whole plaintext is empty.

export const SEGMENT_SIZE = 64 * 1024;
export const TAG_SIZE = 16;
export const SEALED_SEGMENT_SIZE = SEGMENT_SIZE + TAG_SIZE;
export const PAYLOAD_NONCE_SIZE = 16;

export function payloadKey(fileKey: Uint8Array, nonce: Uint8Array): Buffer {
  return hkdf(fileKey, nonce, "payload");
}

function segmentNonce(counter: number, final: boolean): Buffer {
  const n = Buffer.alloc(12);
  // 11-byte big-endian counter; the top bytes stay zero below 2^53 segments.
  n.writeUIntBE(Math.floor(counter / 2 ** 32), 3, 4);
  n.writeUInt32BE(counter >>> 0, 7);
  n[11] = final ? 1 : 0;
  return n;
}

/** Seals one segment; returns [ciphertext, tag] to spare a copy. */
export function sealSegment(key: Buffer, counter: number, final: boolean, plain: Uint8Array): [Buffer, Buffer] {
  const c = createCipheriv("chacha20-poly1305", key, segmentNonce(counter, final), { authTagLength: TAG_SIZE });
  const ct = c.update(plain);
  c.final();
  return [ct, c.getAuthTag()];
}

/** Opens one sealed segment, or returns undefined if the tag does not verify for `final`. */
function tryOpen(key: Buffer, counter: number, final: boolean, sealed: Uint8Array): Buffer | undefined {
  const d = createDecipheriv("chacha20-poly1305", key, segmentNonce(counter, final), { authTagLength: TAG_SIZE });
  d.setAuthTag(sealed.subarray(sealed.length - TAG_SIZE));
  const pt = d.update(sealed.subarray(0, sealed.length - TAG_SIZE));
  try {
    d.final();
  } catch {
    return undefined;
  }
  return pt;
}

/**
 * Opens a segment whose position in the stream is known. When the final flag does not verify
 * but the other one does, the segment is authentic and the stream around it is cut or grown,
 * which deserves its own message.
 */
export function openSegment(
  key: Buffer,
  counter: number,
  final: boolean,
  sealed: Uint8Array,
  object: string,
): Buffer {
  if (sealed.length < TAG_SIZE) throw new IntegrityError(object, `age payload truncated in segment ${counter}`);
  const pt = tryOpen(key, counter, final, sealed);
  if (pt) {
    if (final && pt.length === 0 && counter > 0) {
      throw new IntegrityError(object, "age payload has an empty final segment");
    }
    return pt;
  }
  if (tryOpen(key, counter, !final, sealed)) {
    throw new IntegrityError(
      object,
      final ? `age payload truncated after segment ${counter}` : `age payload has data after its final segment ${counter}`,
    );
  }
  throw new IntegrityError(object, `age payload authentication failed in segment ${counter} (corrupted or altered)`);
}

/**
 * Incremental STREAM encryption. Holds back up to one segment, because a full segment may turn
 * out to be the final one.
 */
export class StreamSealer {
  private readonly pending = Buffer.allocUnsafe(SEGMENT_SIZE);
  private fill = 0;
  private counter = 0;
  private done = false;

  constructor(private readonly key: Buffer) {}

  /** Returns the sealed bytes completed by `data` (possibly none). */
  push(data: Uint8Array): Buffer[] {
    if (this.done) throw new Error("StreamSealer: push after finish");
    const out: Buffer[] = [];
    let off = 0;
    // Seal straight from the caller's buffer when a whole segment is available and more follows.
    if (this.fill === 0) {
      while (data.length - off > SEGMENT_SIZE) {
        out.push(...sealSegment(this.key, this.counter++, false, data.subarray(off, off + SEGMENT_SIZE)));
        off += SEGMENT_SIZE;
      }
    }
    while (off < data.length) {
      if (this.fill === SEGMENT_SIZE) {
        out.push(...sealSegment(this.key, this.counter++, false, this.pending));
        this.fill = 0;
      }
      const n = Math.min(SEGMENT_SIZE - this.fill, data.length - off);
      this.pending.set(data.subarray(off, off + n), this.fill);
      this.fill += n;
      off += n;
    }
    return out;
  }

  finish(): Buffer[] {
    if (this.done) throw new Error("StreamSealer: finish twice");
    this.done = true;
    return sealSegment(this.key, this.counter++, true, this.pending.subarray(0, this.fill));
  }
}

/**
 * Incremental STREAM decryption of a whole payload. A sealed segment is opened only once more
 * bytes follow it (then it cannot be final) or at the end of input.
 */
export class StreamOpener {
  private buf: Buffer = Buffer.alloc(0);
  private counter = 0;

  constructor(
    private readonly key: Buffer,
    private readonly object: string,
  ) {}

  push(data: Uint8Array): Buffer[] {
    // Work on the caller's bytes directly when nothing is held back; only the unfinished tail
    // (less than two segments) is copied, because the caller may reuse its buffer.
    const input = this.buf.length === 0 ? Buffer.from(data.buffer, data.byteOffset, data.byteLength) : Buffer.concat([this.buf, data]);
    const out: Buffer[] = [];
    let off = 0;
    while (input.length - off > SEALED_SEGMENT_SIZE) {
      out.push(openSegment(this.key, this.counter++, false, input.subarray(off, off + SEALED_SEGMENT_SIZE), this.object));
      off += SEALED_SEGMENT_SIZE;
    }
    this.buf = Buffer.from(input.subarray(off));
    return out;
  }

  finish(): Buffer {
    if (this.buf.length === 0) {
      throw new IntegrityError(this.object, this.counter === 0 ? "age payload is missing" : `age payload truncated after segment ${this.counter - 1}`);
    }
    return openSegment(this.key, this.counter++, true, this.buf, this.object);
  }
}

/** The ciphertext byte range (relative to the payload start) holding plaintext [offset, offset+length). */
export interface SegmentSpan {
  firstSegment: number;
  lastSegment: number;
  /** Offset of the first sealed segment, counted from the first byte after the payload nonce. */
  sealedOffset: number;
  sealedLength: number;
  /** Where the requested plaintext starts within the opened segments. */
  skip: number;
}

export function segmentSpan(offset: number, length: number): SegmentSpan {
  const firstSegment = Math.floor(offset / SEGMENT_SIZE);
  const lastSegment = Math.floor((offset + Math.max(length, 1) - 1) / SEGMENT_SIZE);
  return {
    firstSegment,
    lastSegment,
    sealedOffset: firstSegment * SEALED_SEGMENT_SIZE,
    sealedLength: (lastSegment - firstSegment + 1) * SEALED_SEGMENT_SIZE,
    skip: offset - firstSegment * SEGMENT_SIZE,
  };
}

/**
 * Opens consecutive sealed segments starting at `firstSegment`, without knowing where the
 * stream ends. Each segment is tried as non-final first, then final: only one of the two can
 * verify, so this authenticates every byte returned. Bytes past a final segment are an error.
 * `sealed` may be shorter than the span asked for when the object ends sooner.
 */
export function openSegments(key: Buffer, firstSegment: number, sealed: Uint8Array, object: string): Buffer[] {
  return openSegmentsEach(key, firstSegment, sealed, object).map((s) => {
    if (s instanceof IntegrityError) throw s;
    return s;
  });
}

/**
 * The same as openSegments, but a segment that does not verify gives its error in its place
 * and the others are still opened: damage in one segment costs only the plaintext in it.
 */
export function openSegmentsEach(key: Buffer, firstSegment: number, sealed: Uint8Array, object: string): (Buffer | IntegrityError)[] {
  const out: (Buffer | IntegrityError)[] = [];
  let counter = firstSegment;
  let final: number | undefined;
  for (let off = 0; off < sealed.length; off += SEALED_SEGMENT_SIZE, counter++) {
    const seg = sealed.subarray(off, Math.min(off + SEALED_SEGMENT_SIZE, sealed.length));
    if (final !== undefined) out.push(new IntegrityError(object, `age payload has data after its final segment ${final}`));
    else if (seg.length < TAG_SIZE) out.push(new IntegrityError(object, `age payload truncated in segment ${counter}`));
    else {
      const nonFinal = seg.length === SEALED_SEGMENT_SIZE ? tryOpen(key, counter, false, seg) : undefined;
      const opened = nonFinal ?? tryOpen(key, counter, true, seg);
      if (!nonFinal && opened) final = counter;
      out.push(opened ?? new IntegrityError(object, `age payload authentication failed in segment ${counter} (corrupted or altered)`));
    }
  }
  return out;
}
