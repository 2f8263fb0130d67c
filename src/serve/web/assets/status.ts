// The traffic light of a host, from the server's status and the age of its latest snapshot.
// DOM-free, so the unit tests import it as it is.
import type { Status } from "./api.js";

export type Light = "green" | "amber" | "red";

/**
 * Red: stale, or the repository could not be read; amber: the latest snapshot is past 3/4 of
 * stale_after, so the host turns red soon unless a backup runs; green otherwise.
 */
export function light(status: Status, ageSeconds: number | null, staleAfterSeconds: number): { light: Light; label: string } {
  if (status === "error") return { light: "red", label: "error" };
  if (status === "stale") return { light: "red", label: "stale" };
  if (ageSeconds !== null && ageSeconds > 0.75 * staleAfterSeconds) return { light: "amber", label: "ageing" };
  return { light: "green", label: "ok" };
}

