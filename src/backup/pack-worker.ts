import { parentPort, workerData } from "node:worker_threads";
import { PackStage, type StageInit, type ToStage } from "./pack-stage.js";

// A pack worker thread: pack-stage.ts does the work, pipeline.ts is the other end.

const port = parentPort!;
const stage = new PackStage(workerData as StageInit, (m, transfer) => port.postMessage(m, transfer));
port.on("message", (m: ToStage) => stage.receive(m));
