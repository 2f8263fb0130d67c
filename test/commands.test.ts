import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { commandSource } from "../src/backup/commands.js";
import type { CommandSource } from "../src/config/index.js";
import { liveInGroup, until } from "./helpers/procs.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vaultik-commands-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function db(run: string): CommandSource {
  return { name: "db", run, path: "commands/db.dump" };
}

function pidFrom(log: string[]): number | undefined {
  const line = log.find((l) => l.startsWith("[command db] pid="));
  return line === undefined ? undefined : Number(line.slice("[command db] pid=".length));
}

describe("commandSource", () => {
  it("streams 20 MiB of output unchanged, piece by piece", async () => {
    const file = join(dir, "dump.bin");
    const log: string[] = [];
    const source = commandSource(db(`head -c 20971520 /dev/urandom | tee '${file}'`), { log: (l) => log.push(l) });
    expect(source.path).toBe("commands/db.dump");
    const hash = createHash("sha256");
    let size = 0;
    let largest = 0;
    for await (const piece of source.open(undefined)) {
      hash.update(piece);
      size += piece.byteLength;
      largest = Math.max(largest, piece.byteLength);
    }
    await source.finished();
    expect(size).toBe(20 * 1024 * 1024);
    // Proof that output is passed on as it arrives, not collected first.
    expect(largest).toBeLessThan(1 << 20);
    const written = createHash("sha256").update(await readFile(file)).digest("hex");
    expect(hash.digest("hex")).toBe(written);
    expect(log).toEqual([]);
  });

  it("yields everything a failed command wrote, then finished() names it without the run line", async () => {
    const log: string[] = [];
    // 50 000 bytes fit the pipe, so the command exits before the slow consumer has read a byte.
    const run = "export PGPASSWORD=hunter2secret; head -c 50000 /dev/zero; echo pid=$$ >&2; exit 3";
    const source = commandSource(db(run), { log: (l) => log.push(l) });
    let size = 0;
    for await (const piece of source.open(undefined)) {
      if (size === 0) {
        // Hold the first piece until the shell has exited and been reaped.
        await until(() => {
          const pid = pidFrom(log);
          return pid !== undefined && !existsSync(`/proc/${pid}`);
        });
      }
      size += piece.byteLength;
    }
    expect(size).toBe(50_000);
    const err = await source.finished().then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toBe("command db exited with code 3");
    expect(err?.message).not.toContain("hunter2secret");
    expect(log.join("\n")).not.toContain("hunter2secret");
  });

  it("logs stderr line by line with the command's prefix", async () => {
    const log: string[] = [];
    const source = commandSource(db("echo one >&2; echo out; printf 'two\\r\\nthree' >&2"), { log: (l) => log.push(l) });
    const out: Buffer[] = [];
    for await (const piece of source.open(undefined)) out.push(Buffer.from(piece));
    await source.finished();
    expect(Buffer.concat(out).toString()).toBe("out\n");
    expect(log).toEqual(["[command db] one", "[command db] two", "[command db] three"]);
  });

  it("passes the given environment", async () => {
    const source = commandSource(db('printf %s "$DUMP_TARGET"'), { env: { DUMP_TARGET: "prod" }, log: () => {} });
    const out: Buffer[] = [];
    for await (const piece of source.open(undefined)) out.push(Buffer.from(piece));
    await source.finished();
    expect(Buffer.concat(out).toString()).toBe("prod");
  });

  it("abort kills the command and everything it started", async () => {
    const log: string[] = [];
    const source = commandSource(db("echo pid=$$ >&2; head -c 1000 /dev/zero; sleep 30 & sleep 30; wait"), {
      log: (l) => log.push(l),
    });
    const ac = new AbortController();
    const reason = new Error("shutting down");
    const reading = (async () => {
      for await (const _ of source.open(ac.signal)) {
        await until(() => pidFrom(log) !== undefined);
        ac.abort(reason);
      }
    })();
    await expect(reading).rejects.toBe(reason);
    await expect(source.finished()).rejects.toBe(reason);
    const pid = pidFrom(log)!;
    // The shell was reaped before the iteration ended; its sleeps die from the same SIGTERM.
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    await until(() => liveInGroup(pid).length === 0);
  });

  it("a consumer that stops early leaves no process behind", async () => {
    const log: string[] = [];
    const source = commandSource(db("echo pid=$$ >&2; exec yes"), { log: (l) => log.push(l) });
    for await (const _ of source.open(undefined)) {
      await until(() => pidFrom(log) !== undefined);
      break;
    }
    const pid = pidFrom(log)!;
    // Gone, not a zombie: the generator waited for the exit, so Node has reaped it.
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    await expect(source.finished()).rejects.toThrow("command db was stopped before its output was read to the end");
  });

  it("reports a command that could not start", async () => {
    // An environment variable over the kernel's 128 KiB limit makes execve fail with E2BIG.
    const source = commandSource(db("true"), { env: { HUGE: "x".repeat(300_000) }, log: () => {} });
    let size = 0;
    for await (const piece of source.open(undefined)) size += piece.byteLength;
    expect(size).toBe(0);
    await expect(source.finished()).rejects.toThrow(/^command db could not start: /);
  });

  it("finished() before open() rejects", async () => {
    const source = commandSource(db("true"), { log: () => {} });
    await expect(source.finished()).rejects.toThrow("command db was never started");
  });
});
