import type { AlertSeverity } from "../config/types.js";
import type { RunRecord } from "./state.js";

// What an alert is and how bad, apart from the Alerter that sends it, so the payload builders
// and the email sender can use them without importing the Alerter back (no import cycle).

export interface Alert {
  kind: "failure" | "stale" | "abandoned" | "recovered";
  /** One line for a human; secret-free. */
  message: string;
  /** The machine whose backups this is about. */
  host: string;
  /** The app (of a daemon serving several) the alert concerns. */
  app?: string;
  run?: RunRecord;
  /** ISO time of the event. */
  time: string;
}

/**
 * How bad an alert is. A failure or an abandoned run is an error: backups are not being made.
 * Stale is a warning: nothing failed, and a laptop that was off for a weekend is stale too. A
 * reminder keeps its problem's severity, so a channel that got the failure also gets reminders.
 */
export function alertSeverity(alert: Pick<Alert, "kind">): AlertSeverity {
  return SEVERITY[alert.kind];
}

const SEVERITY: Record<Alert["kind"], AlertSeverity> = { failure: "error", abandoned: "error", stale: "warning", recovered: "info" };
