import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { runHook } from "../src/backup/hooks.js";
import { liveInGroup, until } from "./helpers/procs.js";

function numberAfter(log: string[], prefix: string): number {
  const line = log.find((l) => l.startsWith(prefix));
  if (line === undefined) throw new Error(`no line starting with ${prefix}`);
  return Number(line.slice(prefix.length));
}

describe("runHook", () => {
  it("returns the exit code, zero or not, without throwing", async () => {
    const ok = await runHook("pre_backup", "exit 0", { timeoutMs: 10_000, log: () => {} });
    expect(ok).toMatchObject({ code: 0, signal: null, timedOut: false });
    const failed = await runHook("pre_backup", "exit 7", { timeoutMs: 10_000, log: () => {} });
    expect(failed).toMatchObject({ code: 7, signal: null, timedOut: false });
  });

  it("adds env to this process's environment", async () => {
    const log: string[] = [];
    const result = await runHook("post_backup", 'echo "status=$VAULTIK_STATUS"; [ -n "$PATH" ] || exit 9', {
      timeoutMs: 10_000,
      env: { VAULTIK_STATUS: "success" },
      log: (l) => log.push(l),
    });
    expect(result.code).toBe(0);
    expect(log).toEqual(["[hook post_backup] status=success"]);
  });

  it("logs stdout and stderr line by line with the hook's prefix", async () => {
    const log: string[] = [];
    await runHook("pre_backup", "echo out; sleep 0.1; echo err >&2; sleep 0.1; printf 'last'", {
      timeoutMs: 10_000,
      log: (l) => log.push(l),
    });
    expect(log).toEqual(["[hook pre_backup] out", "[hook pre_backup] err", "[hook pre_backup] last"]);
  });

  it("measures how long the hook ran", async () => {
    const result = await runHook("pre_backup", "sleep 0.3", { timeoutMs: 10_000, log: () => {} });
    expect(result.durationMs).toBeGreaterThanOrEqual(250);
    expect(result.durationMs).toBeLessThan(10_000);
  });

  it("on timeout kills the hook and its background children", async () => {
    const log: string[] = [];
    const result = await runHook("pre_backup", "echo pgid=$$; sleep 30 & sleep 30; wait", {
      timeoutMs: 500,
      log: (l) => log.push(l),
    });
    expect(result).toMatchObject({ code: null, signal: "SIGTERM", timedOut: true });
    expect(result.durationMs).toBeGreaterThanOrEqual(450);
    expect(result.durationMs).toBeLessThan(5_000);
    expect(log).toContain("[hook pre_backup] timed out after 500 ms, stopping it");
    const pgid = numberAfter(log, "[hook pre_backup] pgid=");
    await until(() => liveInGroup(pgid).length === 0);
  });

  it("abort stops the hook and rejects with the reason", async () => {
    const log: string[] = [];
    const ac = new AbortController();
    const reason = new Error("daemon stopping");
    const running = runHook("post_backup", "echo pgid=$$; sleep 30 & sleep 30; wait", {
      timeoutMs: 60_000,
      signal: ac.signal,
      log: (l) => log.push(l),
    });
    await until(() => log.length > 0);
    ac.abort(reason);
    await expect(running).rejects.toBe(reason);
    await until(() => liveInGroup(numberAfter(log, "[hook post_backup] pgid=")).length === 0);
  });

  it("does not wait for a background job the hook leaves running", async () => {
    const log: string[] = [];
    // The background sleep keeps stdout open; the hook itself is done at once.
    const result = await runHook("post_backup", "sleep 30 & echo bg=$!", { timeoutMs: 60_000, log: (l) => log.push(l) });
    expect(result).toMatchObject({ code: 0, timedOut: false });
    const bg = numberAfter(log, "[hook post_backup] bg=");
    try {
      // Left alone: starting something that outlives the hook is the user's right.
      expect(readFileSync(`/proc/${bg}/stat`, "utf8")).toContain("(sleep)");
    } finally {
      process.kill(bg, "SIGKILL");
    }
  });

  it("throws when the shell cannot start", async () => {
    // An environment variable over the kernel's 128 KiB limit makes execve fail with E2BIG.
    await expect(
      runHook("pre_backup", "true", { timeoutMs: 10_000, env: { HUGE: "x".repeat(300_000) }, log: () => {} }),
    ).rejects.toThrow(/^hook pre_backup could not start: /);
  });
});
