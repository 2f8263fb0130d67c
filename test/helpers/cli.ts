import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** The built binary, exactly what a user runs (`npm test` builds dist/ first). */
export const BIN = fileURLToPath(new URL("../../bin/vaultik.js", import.meta.url));

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  /** stdout as bytes, for binary output (`fetch … -`). */
  stdoutBytes: Buffer;
  stderr: string;
}

export interface CliOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  uid?: number;
  gid?: number;
  timeoutMs?: number;
}

/** Environment without anything of ours or AWS's that could leak in from the developer's shell. */
export function cleanEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith("VAULTIK_") && !k.startsWith("AWS_")) env[k] = v;
  }
  env["NODE_NO_WARNINGS"] = "1";
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  return env;
}

export function spawnCli(args: readonly string[], options: CliOptions = {}): ChildProcess {
  if (!existsSync(new URL("../../dist/cli/main.js", import.meta.url))) {
    throw new Error("dist/ is missing: run `npm run build` (npm test does it)");
  }
  return spawn(process.execPath, [BIN, ...args], {
    env: cleanEnv(options.env),
    cwd: options.cwd,
    uid: options.uid,
    gid: options.gid,
    stdio: ["ignore", "pipe", "pipe"],
  });
}

export function vaultik(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  const child = spawnCli(args, options);
  return collect(child, options.timeoutMs);
}

/**
 * A safety net, not a way to order events: below vitest's 120 s test timeout, so a hung CLI
 * fails its own test with its output instead of outliving it and writing into a temp dir the
 * test's cleanup is removing (that was the ENOTEMPTY after a timeout under load).
 */
const SAFETY_TIMEOUT_MS = 100_000;

export function collect(child: ChildProcess, timeoutMs = SAFETY_TIMEOUT_MS): Promise<CliResult> {
  const out: Buffer[] = [];
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => out.push(d));
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.once("error", reject);
    // Settles only once the process is gone, so nothing it does can follow the caller's cleanup.
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      const stdoutBytes = Buffer.concat(out);
      if (timedOut) reject(new Error(`vaultik timed out after ${timeoutMs} ms\nstdout: ${stdoutBytes.toString()}\nstderr: ${stderr}`));
      else resolve({ code, signal, stdout: stdoutBytes.toString(), stdoutBytes, stderr });
    });
  });
}
