import type { FailureStreak, RunStatus } from "./state.js";

export type { FailureStreak } from "./state.js";

// Which finished runs deserve an alert. A failing host retries every few seconds at first, and
// an alert per retry buries the one message that matters (46 alerts in 70 s were seen), so:
// one alert when the host goes from working to failing, a reminder every `repeat_after` while it
// keeps failing, one "recovered" when a run succeeds again. Pure, with the clock passed in, so
// the daemon can persist the streak and tests can replay days in microseconds.

export type AlertDecision = "failure" | "reminder" | "recovered";

export function alertAfterRun(
  streak: FailureStreak | undefined,
  status: RunStatus,
  now: number,
  repeatAfterMs: number,
): { alert?: AlertDecision; streak: FailureStreak | undefined } {
  const at = new Date(now).toISOString();
  switch (status) {
    case "failure":
      if (streak === undefined) return { alert: "failure", streak: { since: at, alerted: at } };
      if (now - Date.parse(streak.alerted) >= repeatAfterMs) return { alert: "reminder", streak: { ...streak, alerted: at } };
      return { streak };
    case "success":
      return streak === undefined ? { streak } : { alert: "recovered", streak: undefined };
    default:
      // Interrupted (a stop) or still running: says nothing about whether backups work.
      return { streak };
  }
}
