import { readFileSync, readdirSync } from "node:fs";
import { endianness } from "node:os";
import { join } from "node:path";
import { writeFileAtomicSync } from "./fsio.js";
import { statFields } from "./process.js";

// The scaling target of issue 17 is about the main thread alone: if it spends under a second of
// CPU per GiB, more cores can make the run faster. Wall time and process CPU cannot show that,
// so the bench asks the CLI for the kernel's per-thread accounting (Linux /proc only).

export interface ThreadTimes {
  /** utime+stime of the thread whose id is the process id. */
  mainCpuMs: number;
  /** utime+stime of the whole process, threads that already exited included. */
  totalCpuMs: number;
  /** Threads alive when read. */
  threads: number;
}

const AT_CLKTCK = 17;
const DEFAULT_HZ = 100;

/**
 * Clock ticks per second (sysconf(_SC_CLK_TCK)), which Node does not expose: the kernel hands it
 * to every process in the auxiliary vector. 100 when the vector cannot be read or lacks it,
 * which is what every Linux on x86 and ARM uses.
 */
export function clockTicksPerSecond(auxv?: Uint8Array): number {
  let bytes = auxv;
  if (bytes === undefined) {
    try {
      bytes = readFileSync("/proc/self/auxv");
    } catch {
      return DEFAULT_HZ;
    }
  }
  // Pairs of native unsigned longs: 4 bytes on the 32-bit platforms Node still builds for.
  const word = ["arm", "ia32", "mips", "mipsel", "ppc"].includes(process.arch) ? 4 : 8;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const le = endianness() === "LE";
  const at = (offset: number) => (word === 8 ? Number(view.getBigUint64(offset, le)) : view.getUint32(offset, le));
  for (let offset = 0; offset + 2 * word <= bytes.byteLength; offset += 2 * word) {
    const type = at(offset);
    if (type === 0) break;
    if (type === AT_CLKTCK) {
      const hz = at(offset + word);
      return hz > 0 && hz <= 1_000_000 ? hz : DEFAULT_HZ;
    }
  }
  return DEFAULT_HZ;
}

/** utime+stime (fields 14 and 15, in clock ticks) of one /proc stat line. */
export function parseStatTicks(line: string): number {
  const fields = statFields(line);
  const utime = Number(fields[14 - 3]);
  const stime = Number(fields[15 - 3]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime) || fields.length < 13) {
    throw new Error(`unexpected /proc stat line: ${JSON.stringify(line.slice(0, 200))}`);
  }
  return utime + stime;
}

/** Reads the process's per-thread CPU times from `proc` (a /proc/<pid> directory). */
export function readThreadTimes(proc = "/proc/self", pid = process.pid, hz = clockTicksPerSecond()): ThreadTimes {
  let main = 0;
  let live = 0;
  let threads = 0;
  for (const tid of readdirSync(join(proc, "task"))) {
    let ticks: number;
    try {
      ticks = parseStatTicks(readFileSync(join(proc, "task", tid, "stat"), "utf8"));
    } catch (err) {
      // A thread that exited between the listing and the read: its time is in the process line.
      if ((err as NodeJS.ErrnoException).code === "ENOENT" || (err as NodeJS.ErrnoException).code === "ESRCH") continue;
      throw err;
    }
    threads++;
    live += ticks;
    if (Number(tid) === pid) main = ticks;
  }
  // Worker threads often finish before the process does; only the process-wide line keeps their
  // time. The live sum can run a tick ahead of it when both are read at a tick's boundary.
  const whole = Math.max(parseStatTicks(readFileSync(join(proc, "stat"), "utf8")), live);
  const ms = (ticks: number) => (ticks * 1000) / hz;
  return { mainCpuMs: ms(main), totalCpuMs: ms(whole), threads };
}

/**
 * When `VAULTIK_THREAD_TIMES` names a file, writes this process's ThreadTimes there as JSON as
 * it exits (normally or with an error). Nothing happens when the variable is unset.
 */
export function recordThreadTimesOnExit(env: NodeJS.ProcessEnv = process.env): void {
  const file = env["VAULTIK_THREAD_TIMES"];
  if (!file) return;
  process.on("exit", () => {
    try {
      writeFileAtomicSync(file, `${JSON.stringify(readThreadTimes())}\n`, 0o644);
    } catch (err) {
      // A measurement must not change the exit code of the run it measures.
      process.stderr.write(`vaultik: VAULTIK_THREAD_TIMES: ${(err as Error).message}\n`);
    }
  });
}
