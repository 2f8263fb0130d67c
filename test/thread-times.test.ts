// Issue 17 (benchmark reporting): main-thread CPU time from /proc, written by the CLI when
// VAULTIK_THREAD_TIMES names a file. The bench divides it by the GiB a run read or wrote, so
// the parser must survive any command name and the file must appear however the CLI exits.
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { endianness } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { clockTicksPerSecond, parseStatTicks, readThreadTimes, type ThreadTimes } from "../src/util/thread-times.js";
import { vaultik } from "./helpers/cli.js";
import { useTempDirs } from "./helpers/temp.js";

const tempDir = useTempDirs("vaultik-thread-times-");

/** A stat line as the kernel prints it: fields 3..52 after the command name, utime and stime at 14 and 15. */
function statLine(pid: number, comm: string, utime: number, stime: number): string {
  const after = Array.from({ length: 50 }, (_, i) => String(i + 3));
  after[0] = "S";
  after[14 - 3] = String(utime);
  after[15 - 3] = String(stime);
  // Fields 16 and 17 (children's times) must not be counted: make them large.
  after[16 - 3] = "99999";
  after[17 - 3] = "99999";
  return `${pid} (${comm}) ${after.join(" ")}\n`;
}

/** An auxiliary vector of native-word (type, value) pairs ending with AT_NULL. */
function auxv(pairs: [number, number][]): Buffer {
  const buf = Buffer.alloc((pairs.length + 1) * 16);
  pairs.forEach(([type, value], i) => {
    if (endianness() === "LE") {
      buf.writeBigUInt64LE(BigInt(type), i * 16);
      buf.writeBigUInt64LE(BigInt(value), i * 16 + 8);
    } else {
      buf.writeBigUInt64BE(BigInt(type), i * 16);
      buf.writeBigUInt64BE(BigInt(value), i * 16 + 8);
    }
  });
  return buf;
}

describe("the /proc stat parser", () => {
  it("reads utime+stime after a command name holding spaces and parentheses", () => {
    expect(parseStatTicks(statLine(1234, "a) b) c", 321, 45))).toBe(366);
    expect(parseStatTicks(statLine(7, "(x y)", 0, 1))).toBe(1);
  });

  it("rejects a line without the fields it needs", () => {
    expect(() => parseStatTicks("1234 (truncated) S 1 2")).toThrow(/stat/);
  });

  it("takes the clock tick rate from AT_CLKTCK and falls back to 100", () => {
    // AT_PAGESZ (6) = 4096 comes first so a parser that takes the wrong pair shows.
    expect(clockTicksPerSecond(auxv([[6, 4096], [17, 250]]))).toBe(250);
    expect(clockTicksPerSecond(auxv([[6, 4096]]))).toBe(100);
    expect(clockTicksPerSecond(Buffer.alloc(0))).toBe(100);
    expect(clockTicksPerSecond(auxv([[17, 0]]))).toBe(100);
    // This machine's own vector: `getconf CLK_TCK` is 100 on every Linux this runs on.
    expect(clockTicksPerSecond()).toBe(100);
  });

  it("counts every task, the main thread by its id, and the time of threads that have exited", async () => {
    const proc = await tempDir();
    mkdirSync(join(proc, "task", "1234"), { recursive: true });
    mkdirSync(join(proc, "task", "1240"));
    mkdirSync(join(proc, "task", "1241"));
    writeFileSync(join(proc, "task", "1234", "stat"), statLine(1234, "node (main)", 150, 50));
    writeFileSync(join(proc, "task", "1240", "stat"), statLine(1240, "node) worker", 300, 20));
    writeFileSync(join(proc, "task", "1241", "stat"), statLine(1241, "libuv-worker", 5, 5));
    // The process-wide line also holds threads that exited before the read (a finished worker).
    writeFileSync(join(proc, "stat"), statLine(1234, "node (main)", 900, 100));
    const times = readThreadTimes(proc, 1234, 100);
    expect(times).toEqual({ mainCpuMs: 2000, totalCpuMs: 10000, threads: 3 });
    // Live threads are counted even when the process-wide line lags behind them.
    writeFileSync(join(proc, "stat"), statLine(1234, "node (main)", 1, 1));
    expect(readThreadTimes(proc, 1234, 250).totalCpuMs).toBe(((200 + 320 + 10) * 1000) / 250);
  });
});

describe("VAULTIK_THREAD_TIMES through the built binary", () => {
  function readTimes(file: string): ThreadTimes {
    return JSON.parse(readFileSync(file, "utf8")) as ThreadTimes;
  }

  it("writes the main thread's and the process's CPU time when the CLI exits normally", async () => {
    const dir = await tempDir();
    const file = join(dir, "times.json");
    const r = await vaultik(["--version"], { env: { VAULTIK_THREAD_TIMES: file } });
    expect(r.code).toBe(0);
    const t = readTimes(file);
    expect(t.mainCpuMs).toBeGreaterThan(0);
    expect(t.totalCpuMs).toBeGreaterThanOrEqual(t.mainCpuMs);
    expect(t.threads).toBeGreaterThanOrEqual(1);
    expect(Object.keys(t).sort()).toEqual(["mainCpuMs", "threads", "totalCpuMs"]);
  });

  it("writes it on an error exit too, and writes nothing when the variable is unset", async () => {
    const dir = await tempDir();
    const file = join(dir, "times.json");
    const failed = await vaultik(["backup", join(dir, "missing.yml"), "--cron"], { env: { VAULTIK_THREAD_TIMES: file } });
    expect(failed.code).toBe(2);
    expect(failed.stderr).toMatch(/config/);
    const t = readTimes(file);
    expect(t.mainCpuMs).toBeGreaterThan(0);
    expect(t.totalCpuMs).toBeGreaterThanOrEqual(t.mainCpuMs);

    const quiet = await tempDir();
    const ok = await vaultik(["--version"], { cwd: quiet });
    expect(ok.code).toBe(0);
    expect(readdirSync(quiet)).toEqual([]);
    expect(existsSync(join(quiet, "times.json"))).toBe(false);
  });
});
