import type { ChildProcess } from "node:child_process";
import { spawnCli } from "./cli.js";

// `vaultik backup CONFIG --daemon` as a child process, observed through its log: tests wait for
// named log lines (events), never for fixed delays.

export interface RunningDaemon {
  child: ChildProcess;
  log: () => string;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  exited: Promise<number | null>;
}

/**
 * Starts a daemon; `children` collects it so the caller's afterEach can kill what is left.
 * `config` undefined: no file, the config comes from `env`'s VAULTIK_* variables.
 */
export function startDaemon(config: string | undefined, children: ChildProcess[], env?: Record<string, string>): RunningDaemon {
  const child = spawnCli(config === undefined ? ["backup", "--daemon"] : ["backup", config, "--daemon"], { env });
  children.push(child);
  let log = "";
  const waiters: (() => void)[] = [];
  const wakeAll = (): void => {
    for (const w of waiters.splice(0)) w();
  };
  child.stderr!.on("data", (d: Buffer) => {
    log += d.toString();
    wakeAll();
  });
  child.stdout!.on("data", (d: Buffer) => (log += d.toString()));
  const exited = new Promise<number | null>((r) =>
    child.once("exit", (code) => {
      r(code);
      wakeAll();
    }),
  );
  return {
    child,
    log: () => log,
    exited,
    async waitFor(pattern, timeoutMs = 30_000) {
      // Woken by new output or the exit; one deadline timer bounds how long a silent daemon is given.
      let expired = false;
      const deadline = setTimeout(() => {
        expired = true;
        wakeAll();
      }, timeoutMs);
      try {
        for (;;) {
          const m = pattern.exec(log);
          if (m) return m;
          if (expired || child.exitCode !== null) throw new Error(`timed out waiting for ${pattern}; log:\n${log}`);
          await new Promise<void>((r) => waiters.push(r));
        }
      } finally {
        clearTimeout(deadline);
      }
    },
  };
}
