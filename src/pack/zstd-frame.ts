import { IntegrityError } from "../errors.js";

// Just enough of the zstd frame format (RFC 8878 §3.1) to find where a frame ends and how much
// it can decompress to, without decoding a block. The addon only offers one-shot calls with no
// output limit, so a frame is bounded by reading its headers BEFORE it is handed over: a 130 KB
// frame of RLE blocks can otherwise expand to 4 GiB in memory. Used for blob frames (pack/) and
// for the snapshot database's stream of frames (repo/snapshot-zstd.ts).
//
// Frame layout: magic 0xFD2FB528 (LE), Frame_Header_Descriptor, then optional Window_Descriptor,
// Dictionary_ID and Frame_Content_Size, then blocks, each with a 3-byte LE header (Last_Block,
// Block_Type, Block_Size), then an optional 4-byte checksum. Skippable frames (§3.1.2) are magic
// 0x184D2A5? and a 4-byte LE size, then that many bytes.

const ZSTD_MAGIC = 0xfd2fb528;
const SKIPPABLE_MAGIC = 0x184d2a50; // the low 4 bits are free for the user
/** Block_Maximum_Size is at most 128 KiB for every block type (§3.1.1.2). */
export const MAX_BLOCK_SIZE = 128 * 1024;
/**
 * zstd's decoders refuse larger windows unless told otherwise (ZSTD_WINDOWLOG_LIMIT_DEFAULT,
 * 2^27), and a window is memory the decoder may reserve, so we refuse them first.
 */
export const MAX_WINDOW = 2 ** 27;

const RAW_BLOCK = 0;
const RLE_BLOCK = 1;
const RESERVED_BLOCK = 3;

/** Where a frame sits, for error messages. */
export interface Where {
  object: string;
  /** Offset of the frame in the stream or blob plaintext. */
  origin: number;
  /** The frame's number in a stream, when it is one of many. */
  index: number | undefined;
}

export function frameLabel(index: number | undefined, origin: number): string {
  return index === undefined ? `zstd frame at byte ${origin}` : `zstd frame ${index} (at byte ${origin})`;
}

/** How far the parse of one frame got; it resumes from here when more bytes arrive. */
export interface Scan {
  phase: "magic" | "blocks" | "done";
  /** Frame-relative offset of the next block header, in phase "blocks". */
  pos: number;
  checksum: boolean;
  skippable: boolean;
  length: number;
  /** Block_Maximum_Size: the most one compressed block may decode to, min(window, 128 KiB). */
  blockMax: number;
  /**
   * The most the blocks read so far can decompress to: raw and RLE blocks state their size, a
   * compressed block decodes to at most blockMax (§3.1.1.2.4). Zero for skippable frames.
   */
  bound: number;
}

export function newScan(): Scan {
  return { phase: "magic", pos: 0, checksum: false, skippable: false, length: 0, blockMax: MAX_BLOCK_SIZE, bound: 0 };
}

/**
 * Parses as much of the frame at the start of `view` as it holds. Returns the frame's length
 * once the last block header is read (phase "done"), else how many bytes from the frame start
 * the next step needs, which always exceeds `view.length`. Block contents are never read.
 */
export function advance(scan: Scan, view: Uint8Array, where: Where): number {
  for (;;) {
    switch (scan.phase) {
      case "done":
        return scan.length;
      case "magic": {
        if (view.length < 4) return 4;
        const magic = readU32(view, 0);
        if ((magic & 0xfffffff0) >>> 0 === SKIPPABLE_MAGIC) {
          if (view.length < 8) return 8;
          scan.skippable = true;
          scan.length = 8 + readU32(view, 4);
          scan.phase = "done";
          continue;
        }
        if (magic !== ZSTD_MAGIC) throw new IntegrityError(where.object, `not a zstd frame at byte ${where.origin}`);
        if (view.length < 5) return 5;
        const fhd = view[4] ?? 0;
        if (fhd & 0x08) {
          throw new IntegrityError(where.object, `${frameLabel(where.index, where.origin)} sets the reserved header bit`);
        }
        const singleSegment = (fhd & 0x20) !== 0;
        const fcsFlag = fhd >> 6;
        const fcsSize = fcsFlag === 0 ? (singleSegment ? 1 : 0) : 1 << fcsFlag;
        const didSize = [0, 1, 2, 4][fhd & 0x03] ?? 0;
        const headerEnd = 5 + (singleSegment ? 0 : 1) + didSize + fcsSize;
        if (view.length < headerEnd) return headerEnd;
        // A single-segment frame's window is its content size (§3.1.1.1.2).
        const window = singleSegment ? readUint(view, headerEnd - fcsSize, fcsSize) + (fcsSize === 2 ? 256 : 0) : windowSize(view[5] ?? 0);
        if (window > MAX_WINDOW) {
          throw new IntegrityError(
            where.object,
            `${frameLabel(where.index, where.origin)} asks for a ${window}-byte window (limit ${MAX_WINDOW})`,
          );
        }
        scan.blockMax = Math.min(window, MAX_BLOCK_SIZE);
        scan.checksum = (fhd & 0x04) !== 0;
        scan.pos = headerEnd;
        scan.phase = "blocks";
        continue;
      }
      case "blocks": {
        const p = scan.pos;
        if (view.length < p + 3) return p + 3;
        const header = (view[p] ?? 0) | ((view[p + 1] ?? 0) << 8) | ((view[p + 2] ?? 0) << 16);
        const last = (header & 1) !== 0;
        const type = (header >> 1) & 3;
        const size = header >>> 3;
        const at = where.origin + p;
        if (type === RESERVED_BLOCK) {
          throw new IntegrityError(where.object, `${frameLabel(where.index, where.origin)} has a reserved block type at byte ${at}`);
        }
        if (size > MAX_BLOCK_SIZE) {
          throw new IntegrityError(
            where.object,
            `${frameLabel(where.index, where.origin)} has a ${size}-byte block at byte ${at} (limit ${MAX_BLOCK_SIZE})`,
          );
        }
        scan.bound += type === RAW_BLOCK || type === RLE_BLOCK ? size : scan.blockMax;
        // An RLE block stores one byte that is repeated Block_Size times.
        scan.pos = p + 3 + (type === RLE_BLOCK ? 1 : size);
        if (last) {
          scan.length = scan.pos + (scan.checksum ? 4 : 0);
          scan.phase = "done";
        }
        continue;
      }
    }
  }
}

/**
 * Total length of the (zstd or skippable) frame starting at `offset`, or undefined while `buf`
 * does not yet hold all of it. Throws IntegrityError naming `object` on malformed data.
 */
export function frameLength(buf: Uint8Array, offset: number, object = "zstd stream"): number | undefined {
  const scan = newScan();
  const view = buf.subarray(offset);
  const n = advance(scan, view, { object, origin: offset, index: undefined });
  return scan.phase === "done" && n <= view.length ? n : undefined;
}

/**
 * The most `frame` can decompress to. `frame` must be exactly one zstd frame, as a blob's
 * frame is: trailing bytes could hold further frames the decoder would also expand.
 * @param origin the frame's offset in the blob's plaintext, for messages
 */
export function frameOutputBound(frame: Uint8Array, object: string, origin: number): number {
  const scan = newScan();
  const where = { object, origin, index: undefined };
  const n = advance(scan, frame, where);
  if (scan.phase !== "done" || n > frame.length) {
    throw new IntegrityError(object, `${frameLabel(undefined, origin)} is truncated (${frame.length} bytes, needs ${n})`);
  }
  if (scan.skippable) throw new IntegrityError(object, `${frameLabel(undefined, origin)} is a skippable frame, not a chunk's`);
  if (n !== frame.length) {
    throw new IntegrityError(object, `${frameLabel(undefined, origin)} ends after ${n} of its ${frame.length} bytes`);
  }
  return scan.bound;
}

/** Window_Size from a Window_Descriptor byte (§3.1.1.1.2). */
function windowSize(descriptor: number): number {
  const base = 2 ** (10 + (descriptor >> 3));
  return base + (base / 8) * (descriptor & 0x07);
}

function readU32(view: Uint8Array, at: number): number {
  return readUint(view, at, 4);
}

/** A little-endian unsigned integer of `size` bytes (8-byte values lose precision above 2^53). */
function readUint(view: Uint8Array, at: number, size: number): number {
  let n = 0;
  for (let i = size - 1; i >= 0; i--) n = n * 256 + (view[at + i] ?? 0);
  return n;
}
