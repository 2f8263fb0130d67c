import { alertAfterRun, type FailureStreak } from "../daemon/alert-policy.js";
import type { Alert } from "../daemon/alerts.js";
import type { HostStatus, RunView } from "./status.js";

// Alerts without agents: after each poll, each host's state is run through the daemon's policy
// (daemon/alert-policy.ts), a stale host or an abandoned run counting as a failing run. So a
// problem is alerted once, reminded every repeat_after while it lasts, and "recovered" once when
// the host has a fresh snapshot and no abandoned run again. An abandoned run is also alerted on
// its own, once per run, when it comes while the host is already known to be in trouble.

export interface HostAlertInput {
  repo: string;
  host: string;
  status: HostStatus;
  latestTime: number | null;
  lastRun: RunView | null;
}

interface HostMemory {
  streak?: FailureStreak;
  /** Abandoned runs already alerted. */
  runs: Set<string>;
}

export class HostAlerts {
  readonly #hosts = new Map<string, HostMemory>();

  constructor(private readonly repeatAfterMs: number) {}

  /** The alerts this poll's view of the host calls for (none while a repository cannot be read). */
  decide(h: HostAlertInput, now: number): Alert[] {
    if (h.status === "error") return [];
    const id = `${h.repo}\0${h.host}`;
    const mem = this.#hosts.get(id) ?? { runs: new Set<string>() };
    this.#hosts.set(id, mem);
    const abandoned = h.lastRun?.state === "abandoned" ? h.lastRun.id : undefined;
    const stale = h.status === "stale";
    const { alert, streak } = alertAfterRun(mem.streak, stale || abandoned !== undefined ? "failure" : "success", now, this.repeatAfterMs);
    mem.streak = streak;
    const time = new Date(now).toISOString();
    const out: Alert[] = [];
    const since = h.latestTime === null ? "no snapshot at all" : `last snapshot ${new Date(h.latestTime).toISOString()}`;
    const where = `${h.host} (repository ${h.repo})`;
    if (alert === "recovered") {
      out.push({ kind: "recovered", host: h.host, time, message: `backups of ${where} are current again: ${since}` });
      mem.runs.clear();
      return out;
    }
    if (alert !== undefined && stale) {
      out.push({ kind: "stale", host: h.host, time, message: `${alert === "reminder" ? "still " : ""}no recent backup of ${where}: ${since}` });
    }
    if (abandoned !== undefined && (!mem.runs.has(abandoned) || (alert !== undefined && !stale))) {
      mem.runs.add(abandoned);
      const beat = h.lastRun!.lastBeat === null ? "no heartbeat" : `last heartbeat ${new Date(h.lastRun!.lastBeat).toISOString()}`;
      out.push({ kind: "abandoned", host: h.host, time, message: `backup run ${abandoned} of ${where} was abandoned (${beat}, never ended)` });
    }
    return out;
  }
}
