// A full restore in this process, measured the way issue 17 states its restore targets: wall
// time, main-thread CPU (utime+stime of the thread whose id is the process id, from
// /proc/self/task/<pid>/stat) per GiB restored, and peak RSS (VmHWM; run it under
// `/usr/bin/time -v` for the same figure from outside). Not a test: the figures are the machine's.
//
//   npm run build
//   npx tsx bench/restore-threads.ts --repo DIR --key KEYFILE --target DIR [--snapshot latest]
//
// The target must not exist; it is left in place (the caller removes it, after comparing).

import { readFileSync } from "node:fs";
import { parseIdentityFile } from "../dist/crypto/keys.js";
import { Repository } from "../dist/repo/repository.js";
import { Restorer } from "../dist/restore/restorer.js";
import { withSnapshot } from "../dist/snapshot/open.js";
import { openFsStore } from "../dist/store/fs.js";

const arg = (name: string, fallback?: string): string => {
  const i = process.argv.indexOf(name);
  const v = i > 0 ? process.argv[i + 1] : fallback;
  if (v === undefined) throw new Error(`${name} is required`);
  return v;
};

/** CPU seconds of the main thread so far: fields 14 and 15 of its stat, in clock ticks (100 a second on Linux). */
function mainThreadCpu(): number {
  const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, "utf8");
  // The command name (field 2) may hold spaces: count fields from after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function peakRssMB(): number {
  const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
  return (Number(hwm?.[1]) * 1024) / 1e6;
}

const identities = parseIdentityFile(readFileSync(arg("--key"), "utf8"));
const repo = new Repository(openFsStore(arg("--repo")));
const snapshot = await repo.findSnapshot(arg("--snapshot", "latest"));
const target = arg("--target");
const cpuBefore = mainThreadCpu();
const t0 = process.hrtime.bigint();
const summary = await withSnapshot(repo, snapshot, identities, (reader) => new Restorer({ repo, identities, snapshot: reader, target }).run());
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
const cpuEnd = mainThreadCpu();
const GiB = summary.bytes / 2 ** 30;
console.log(
  JSON.stringify({
    seconds: +seconds.toFixed(2),
    bytes: summary.bytes,
    files: summary.files,
    errors: summary.errors.length,
    mainThreadCpuS: +cpuEnd.toFixed(2),
    mainThreadCpuRestoreS: +(cpuEnd - cpuBefore).toFixed(2),
    mainThreadCpuPerGiB: +(cpuEnd / GiB).toFixed(3),
    mainThreadCpuRestorePerGiB: +((cpuEnd - cpuBefore) / GiB).toFixed(3),
    processCpuS: +((process.cpuUsage().user + process.cpuUsage().system) / 1e6).toFixed(2),
    peakRssMB: +peakRssMB().toFixed(1),
  }),
);
