import type { SnapshotCache } from "../snapshot/cache.js";
import type { ReadFlags } from "./options.js";

/** The snapshot cache a command uses (none with --no-cache). */
export function cacheFor(_flags: ReadFlags): SnapshotCache | undefined {
  return undefined;
}
