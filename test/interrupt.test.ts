import type { ChildProcess } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { signalGroup } from "../src/util/child.js";
import { vaultik } from "./helpers/cli.js";
import { startDaemon } from "./helpers/daemon.js";
import { cliKeys, localRepo, readJsonFile, type LocalRepo } from "./helpers/setup.js";

// SIGTERM/SIGINT in the middle of a run. The signal is sent by the run itself at a named point
// (the pre_backup hook or a command source runs `kill -TERM $PPID`, $PPID being vaultik), so
// the interruption lands at the same place on every machine, however loaded.

let keys: { identity: string; recipient: string };
let dir = "";
const children: ChildProcess[] = [];
/** Process groups of hooks a test left blocked; killed after each test. */
const groups: number[] = [];

beforeAll(async () => {
  keys = await cliKeys();
});

afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  for (const g of groups.splice(0)) signalGroup(g, "SIGKILL");
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = "";
});

/** KEY=value lines written by `env`, only vaultik's. */
async function hookEnv(path: string): Promise<Record<string, string>> {
  const env: Record<string, string> = {};
  for (const line of (await readFile(path, "utf8")).split("\n")) {
    const eq = line.indexOf("=");
    if (line.startsWith("VAULTIK_") && eq > 0) env[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return env;
}

interface Scripts {
  pre: string;
  post?: string;
  /** Extra config lines. */
  extra?: string;
  timeout?: string;
}

/**
 * A repository whose hooks are shell files in a new temp dir, sourced so that `$PPID` is
 * vaultik; `scripts` receives that dir. post_backup defaults to saving its environment.
 */
async function setup(scripts: (dir: string) => Scripts): Promise<LocalRepo & { postEnv: (run?: string) => string }> {
  dir = await mkdtemp(join(tmpdir(), "vaultik-interrupt-"));
  const o = scripts(dir);
  await writeFile(join(dir, "pre.sh"), o.pre);
  await writeFile(join(dir, "post.sh"), o.post ?? `env > "${dir}/post-env-$VAULTIK_RUN.txt"\n`);
  const r = await localRepo(
    dir,
    keys,
    `hooks:\n  pre_backup: ". ${dir}/pre.sh"\n  post_backup: ". ${dir}/post.sh"\n  timeout: ${o.timeout ?? "30s"}\n${o.extra ?? ""}`,
  );
  await writeFile(join(r.source, "a.txt"), "a");
  return { ...r, postEnv: (run = "") => join(dir, `post-env-${run}.txt`) };
}

/** pre_backup that interrupts vaultik, then waits to be stopped with the run. */
const interruptInPre = (signal = "TERM"): string => `echo interrupting; kill -${signal} $PPID; exec sleep 60\n`;

describe("backup --cron interrupted", () => {
  it.each(["TERM", "INT"])("SIG%s sent by pre_backup: post_backup runs with VAULTIK_STATUS=interrupted, exit 130, no snapshot", async (signal) => {
    const r = await setup(() => ({ pre: interruptInPre(signal) }));
    const out = await vaultik(["backup", r.config, "--cron"]);
    expect(out.code, out.stderr).toBe(130);
    expect(out.stderr).toMatch(/vaultik: interrupted/);
    const env = await hookEnv(r.postEnv());
    expect(env).toMatchObject({ VAULTIK_STATUS: "interrupted", VAULTIK_SNAPSHOT_ID: "", VAULTIK_CONFIG: r.config });
    expect(out.stderr).toMatch(/post_backup hook exited with code 0/);
    const snaps = await vaultik(["snapshots", r.repo, "", "--json"]);
    expect(JSON.parse(snaps.stdout)).toEqual([]);
  });

  it("SIGTERM sent by a command source in the middle of the backup: post_backup learns it was interrupted", async () => {
    const r = await setup((d) => ({
      pre: "echo pre-ran\n",
      extra: `commands:\n  - name: trigger\n    run: ". ${d}/cmd.sh"\n    path: trigger.bin\n`,
    }));
    // The command prints some data, then interrupts vaultik while its output is being read.
    await writeFile(join(dir, "cmd.sh"), "head -c 100000 /dev/zero; kill -TERM $PPID; exec sleep 60\n");
    const out = await vaultik(["backup", r.config, "--cron"]);
    expect(out.code, out.stderr).toBe(130);
    expect(out.stderr).toContain("[hook pre_backup] pre-ran");
    expect(await hookEnv(r.postEnv())).toMatchObject({ VAULTIK_STATUS: "interrupted", VAULTIK_SNAPSHOT_ID: "" });
  });

  it("an interrupted run's post_backup is still bounded by hooks.timeout", async () => {
    const r = await setup(() => ({ pre: interruptInPre(), post: "echo post-started; exec sleep 120\n", timeout: "1s" }));
    const out = await vaultik(["backup", r.config, "--cron"], { timeoutMs: 60_000 });
    expect(out.code, out.stderr).toBe(130);
    expect(out.stderr).toContain("[hook post_backup] post-started");
    expect(out.stderr).toMatch(/post_backup hook timed out/);
  });
});

describe("backup --daemon interrupted", () => {
  it("post_backup runs with VAULTIK_STATUS=interrupted; the run is recorded as interrupted; health-check follows the process", async () => {
    const mode = (d: string): string => join(d, "mode");
    const r = await setup((d) => ({
      // The mode file picks what the next run's pre_backup does, so each run stops at a known point.
      pre: [
        `case "$(cat ${mode(d)} 2>/dev/null)" in`,
        "  kill) echo interrupting; kill -TERM $PPID; exec sleep 60 ;;",
        '  block) echo "blocked pgid=$$"; exec sleep 600 ;;',
        "esac",
        "",
      ].join("\n"),
      extra: "backup_interval: 1s\nmin_time_between_run: 0s\nfull_scan_interval: 1h\n",
    }));
    const statePath = join(dir, "state", "index.sqlite.d", "daemon-state.json");

    // Run 1 succeeds; run 2 is interrupted by SIGTERM from its pre_backup hook.
    const d = startDaemon(r.config, children);
    await d.waitFor(/backup #1 saved snapshot/);
    await writeFile(mode(dir), "kill");
    await writeFile(join(r.source, "b.txt"), "b");
    expect(await d.exited).toBe(0);
    expect(d.log()).toContain("[hook pre_backup] interrupting");
    expect(d.log()).toMatch(/backup #2 interrupted/);
    expect(d.log()).not.toMatch(/backup #2 failed/);
    expect(await hookEnv(r.postEnv("1"))).toMatchObject({ VAULTIK_STATUS: "success", VAULTIK_RUN: "1" });
    expect(await hookEnv(r.postEnv("2"))).toMatchObject({ VAULTIK_STATUS: "interrupted", VAULTIK_RUN: "2", VAULTIK_SNAPSHOT_ID: "" });

    const stopped = await readJsonFile<{ state: { state: string; consecutiveFailures: number; lastRun: { seq: number; status: string }; lastSuccess: { seq: number } } }>(statePath);
    expect(stopped.state.state).toBe("stopped");
    expect(stopped.state.lastRun).toMatchObject({ seq: 2, status: "interrupted" });
    expect(stopped.state.lastSuccess.seq).toBe(1);
    expect(stopped.state.consecutiveFailures).toBe(0);

    // No daemon: unhealthy, and the reason says it stopped, not that a backup failed.
    const afterStop = await vaultik(["health-check", r.config]);
    expect(afterStop.code).toBe(1);
    expect(afterStop.stdout).toMatch(/^unhealthy: the daemon \(pid \d+\) stopped at /);

    // A restarted daemon remembers the last success: the interrupted run does not make it
    // unhealthy while its first run is still going (blocked in pre_backup here).
    await writeFile(mode(dir), "block");
    const again = startDaemon(r.config, children);
    groups.push(Number((await again.waitFor(/\[hook pre_backup\] blocked pgid=(\d+)/))[1]));
    const running = await vaultik(["health-check", r.config]);
    expect(running.stdout).toMatch(/^healthy: last success/);
    expect(running.code).toBe(0);

    // Killed without a chance to stop cleanly: the state file still says "running", but the
    // process is gone, and health-check says so.
    again.child.kill("SIGKILL");
    await again.exited;
    const killed = await vaultik(["health-check", r.config]);
    expect(killed.code).toBe(1);
    expect(killed.stdout).toMatch(/^unhealthy: the daemon \(pid \d+\) is not running/);
  });
});

describe("health-check and the daemon's process", () => {
  /** Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot. */
  function startTime(pid: number): string {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]!;
  }

  async function writeState(r: LocalRepo, pid: number, pidStartTime: string): Promise<void> {
    const now = new Date().toISOString();
    const run = { seq: 1, trigger: "startup", status: "success", started: now, finished: now, snapshotId: "s1", filesNew: 1, filesChanged: 0, filesUnchanged: 0, bytesRead: 1, bytesUploaded: 1, blobsUploaded: 1, errors: 0 };
    const state = { state: "idle", pid, version: "0", startedAt: now, dirtyPaths: 0, consecutiveFailures: 0, lastRun: run, lastSuccess: run, history: [run] };
    await mkdir(join(r.dir, "state", "index.sqlite.d"), { recursive: true });
    await writeFile(join(r.dir, "state", "index.sqlite.d", "daemon-state.json"), JSON.stringify({ state, staleAfterMs: 3600_000, writtenAt: now, pidStartTime }));
  }

  it("a live pid with the recorded start time is healthy; the same pid with another start time (reused) is not", async () => {
    dir = await mkdtemp(join(tmpdir(), "vaultik-interrupt-"));
    const r = await localRepo(dir, keys);
    // This test process stands in for the daemon: alive, with a known start time.
    await writeState(r, process.pid, startTime(process.pid));
    const alive = await vaultik(["health-check", r.config]);
    expect(alive.stdout).toMatch(/^healthy: /);
    expect(alive.code).toBe(0);

    await writeState(r, process.pid, String(Number(startTime(process.pid)) + 1));
    const reused = await vaultik(["health-check", r.config]);
    expect(reused.stdout).toMatch(new RegExp(`^unhealthy: the daemon \\(pid ${process.pid}\\) is not running`));
    expect(reused.code).toBe(1);
  });
});
