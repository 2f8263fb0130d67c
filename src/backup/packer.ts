import type { ChunkId } from "../model/ids.js";
import type { PackWriter, SealedBlob } from "../pack/writer.js";

// Compression and packing run in the background while the chunkers go on reading: each new
// chunk is handed to the pack writer at once, and the blobs it seals go to the uploader. What
// waits to be compressed is bounded in bytes, and a chunker is held back (room()) until it is
// under the bound again, so a fast disk cannot outrun zstd into unbounded memory.

/** The part of the pack writer the packer drives. */
export type ChunkPacker = Pick<PackWriter, "add" | "flush" | "abort">;

/** Bytes of new chunks waiting to be compressed before chunkers are held back. */
const PACKING_BYTES = 16 << 20;

export class Packer {
  /** Chunks being compressed and appended, and their bytes. */
  private readonly packing = new Set<Promise<void>>();
  private packingBytes = 0;
  private failure: { error: unknown } | undefined;

  constructor(
    private readonly writer: ChunkPacker,
    /** Takes the blobs the writer sealed (the uploader's enqueue, which applies its own backpressure). */
    private readonly send: (blobs: readonly SealedBlob[]) => Promise<void>,
    private readonly maxBytes = PACKING_BYTES,
  ) {}

  /** Compresses and appends a chunk in the background; a failure surfaces at the next call. */
  add(data: Uint8Array, hex: ChunkId): void {
    const size = data.length;
    this.packingBytes += size;
    const p: Promise<void> = this.writer
      .add(data, hex)
      .then((sealed) => this.send(sealed))
      .catch((error: unknown) => {
        this.failure ??= { error };
      })
      .finally(() => {
        this.packingBytes -= size;
        this.packing.delete(p);
      });
    this.packing.add(p);
  }

  /**
   * Resolves as soon as the bytes waiting for compression are few enough: the chunker goes on
   * reading while these compress, instead of both taking turns. Rethrows the first failure.
   */
  async room(): Promise<void> {
    while (this.packingBytes > this.maxBytes && this.packing.size > 0) await Promise.race(this.packing);
    this.throwIfFailed();
  }

  throwIfFailed(): void {
    if (this.failure) throw this.failure.error;
  }

  /** Waits for every chunk handed to add(), then seals and sends what the writer still holds. */
  async finish(): Promise<void> {
    while (this.packing.size > 0) await Promise.all(this.packing);
    this.throwIfFailed();
    await this.send(await this.writer.flush());
  }

  /** After a failed run: lets the appends in flight end, then drops what the writer holds. */
  async abort(): Promise<void> {
    await Promise.allSettled([...this.packing]);
    await this.writer.abort();
  }
}
