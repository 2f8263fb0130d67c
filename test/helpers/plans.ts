import type { ChunkLocation } from "../../src/model/chunk.js";
import type { SnapshotReader } from "../../src/snapshot/read.js";

/** A restore plan (framePlans) one placement at a time, as tests look at it. */
export function placementsOf(reader: SnapshotReader, prefix?: string): { path: string; fileOffset: number; fileChunks: number; loc: ChunkLocation }[] {
  const out: { path: string; fileOffset: number; fileChunks: number; loc: ChunkLocation }[] = [];
  for (const plan of reader.framePlans(prefix)) {
    for (let k = 0; k < plan.fileOf.length; k++) {
      const info = reader.fileInfo(plan.fileOf[k]!);
      const c = plan.chunkOf[k]!;
      const loc: ChunkLocation = {
        id: plan.ids[c]!, blob: plan.blob, offset: plan.offset, length: plan.length,
        rawOffset: plan.raw[2 * c]!, rawLength: plan.raw[2 * c + 1]!, compression: "zstd",
      };
      out.push({ path: info.path, fileOffset: plan.fileOffsetOf[k]!, fileChunks: info.chunks, loc });
    }
  }
  return out;
}
