import { errorMessage } from "../errors.js";
import { SealedFrames, type CutFrame, type SealedStart } from "../pack/reader.js";
import type { FileSink, FrameWork, SinkFailure } from "./sink.js";

// One blob of a restore, at the writer thread's end: the blob's bytes come as read (forwardBlob),
// and here they are hashed, decrypted, cut into the wanted frames, which the sink decompresses,
// checks and writes. The main thread only plans: which frames, and where each chunk goes.

export interface BlobJobStart extends SealedStart {
  blob: string;
  object: string;
  /** The wanted frames, in offset order, with what to write from each (null: nothing, every file it was for failed or is skipped). */
  frames: { offset: number; length: number; work: FrameWork | null }[];
}

/** How a blob ended: frames up to `upTo` (a plaintext offset) are handled; `error` stopped it. */
export interface BlobJobEnd {
  upTo: number;
  error?: string;
}

export class BlobJob {
  private readonly cut: SealedFrames<BlobJobStart["frames"][number]>;
  private readonly object: string;
  private upTo = -1;
  private error: string | undefined;

  constructor(
    private readonly sink: FileSink,
    start: BlobJobStart,
  ) {
    this.object = start.object;
    this.cut = new SealedFrames(start.blob, start.object, start, start.frames);
  }

  /** Takes the next bytes of the blob; what fails to be written is added to `failed`. */
  async push(part: Uint8Array, failed: SinkFailure[]): Promise<void> {
    if (this.error !== undefined) return;
    await this.apply(() => this.cut.push(part), failed);
  }

  /** The blob has ended (or, `aborted`, its read failed: what came is applied, nothing is checked). */
  async end(aborted: boolean, failed: SinkFailure[]): Promise<BlobJobEnd> {
    if (!aborted && this.error === undefined) {
      await this.apply(() => this.cut.finish(), failed);
      if (this.error === undefined) this.fail(() => this.cut.verify());
    }
    return { upTo: this.upTo, ...(this.error === undefined ? {} : { error: this.error }) };
  }

  private async apply(cut: () => CutFrame<BlobJobStart["frames"][number]>[], failed: SinkFailure[]): Promise<void> {
    let frames: CutFrame<BlobJobStart["frames"][number]>[] = [];
    this.fail(() => (frames = cut()));
    const work = frames.flatMap((f) => (f.frame.work ? [{ bytes: f.bytes, object: this.object, work: f.frame.work }] : []));
    if (work.length > 0) failed.push(...(await this.sink.applyFrames(work)));
    if (frames.length > 0) this.upTo = frames[frames.length - 1]!.frame.offset;
  }

  /** A blob stops at its first damage: the restorer reads what follows by ranges. */
  private fail(step: () => void): void {
    try {
      step();
    } catch (err) {
      this.error = errorMessage(err);
    }
  }
}
