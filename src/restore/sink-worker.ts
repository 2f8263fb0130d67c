import { parentPort, workerData } from "node:worker_threads";
import { FileSink } from "./sink.js";
import type { FromWriter, ToWriter, WriterInit } from "./writers.js";

// A writer thread of a restore: applies batches (see writers.ts) one after the other and hands
// each batch's buffer back with its acknowledgement, for reuse.

const port = parentPort!;
const sink = new FileSink((workerData as WriterInit).owners);
let queue = Promise.resolve();

port.on("message", (m: ToWriter) => {
  queue = queue.then(async () => {
    if (m.kind === "close") {
      sink.closeAll();
      port.postMessage({ kind: "closed" } satisfies FromWriter);
      return;
    }
    const [bytes, files] = [sink.bytes, sink.files];
    const failed = await sink.applyBatch(m.items, m.data);
    const reply: FromWriter = { kind: "done", id: m.id, bytes: sink.bytes - bytes, files: sink.files - files, failed, data: m.data };
    port.postMessage(reply, [m.data.buffer as ArrayBuffer]);
  });
});
