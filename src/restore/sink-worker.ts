import { parentPort, workerData } from "node:worker_threads";
import { BlobJob } from "./blob-job.js";
import { FileSink, type SinkFailure } from "./sink.js";
import type { FromWriter, ToWriter, WriterInit } from "./writers.js";

// A writer thread of a restore: applies batches and blobs' bytes (see writers.ts) one message
// after the other, hands each batch's buffer back with its acknowledgement, for reuse, and
// acknowledges each part of a blob once processed, which lets the main thread send more.

const port = parentPort!;
const init = workerData as WriterInit;
const sink = new FileSink(init.owners, init.locks);
const jobs = new Map<number, BlobJob>();
let queue = Promise.resolve();

/** Runs `step` and says what it wrote. */
async function applied(step: (failed: SinkFailure[]) => Promise<void>): Promise<{ bytes: number; files: number; failed: SinkFailure[] }> {
  const [bytes, files] = [sink.bytes, sink.files];
  const failed: SinkFailure[] = [];
  await step(failed);
  return { bytes: sink.bytes - bytes, files: sink.files - files, failed };
}

port.on("message", (m: ToWriter) => {
  queue = queue.then(async () => {
    switch (m.kind) {
      case "close":
        sink.closeAll();
        port.postMessage({ kind: "closed" } satisfies FromWriter);
        return;
      case "blob":
        jobs.set(m.job, new BlobJob(sink, m.start));
        return;
      case "sealed": {
        const a = await applied((failed) => jobs.get(m.job)!.push(m.data, failed));
        port.postMessage({ kind: "sealed", job: m.job, consumed: m.data.length, ...a } satisfies FromWriter);
        return;
      }
      case "blobEnd": {
        let end = { upTo: -1 };
        const a = await applied(async (failed) => void (end = await jobs.get(m.job)!.end(m.aborted, failed)));
        jobs.delete(m.job);
        port.postMessage({ kind: "blobEnd", job: m.job, end, ...a } satisfies FromWriter);
        return;
      }
      case "batch": {
        const a = await applied(async (failed) => void failed.push(...(await sink.applyBatch(m.items, m.data))));
        port.postMessage({ kind: "done", id: m.id, ...a, data: m.data } satisfies FromWriter, [m.data.buffer as ArrayBuffer]);
      }
    }
  });
});
