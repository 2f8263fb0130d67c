import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomicSync } from "../util/fsio.js";
import { makeDirsSync } from "../util/mkdir.js";
import type { CheckReport } from "./check.js";

// The last `vaultik check` of a repository, kept on the machine that ran it (its local cache
// directory), never in the bucket: the recovery machine is read-only toward the repository, and
// `vaultik serve` there shows the record on the host page.

export interface CheckRecord {
  /** ISO time the check finished. */
  time: string;
  ok: boolean;
  /** One line, as `vaultik check` prints it. */
  summary: string;
}

/** One file per repository location, named by a hash so no location text becomes a path. */
export function checkRecordPath(cacheRoot: string, location: string): string {
  return join(cacheRoot, "checks", `${createHash("sha256").update(location).digest("hex").slice(0, 32)}.json`);
}

export function checkRecord(report: CheckReport, readData: number, time: Date): CheckRecord {
  const ok = report.damage.length === 0 && report.unreadable.length === 0;
  const read = readData > 0 ? `, read ${report.blobsRead} blob(s)` : " (listing only)";
  const problems = ok ? "no errors found" : `${report.damage.length} damaged blob reference(s), ${report.unreadable.length} unreadable snapshot(s)`;
  return { time: time.toISOString(), ok, summary: `${report.snapshots} snapshot(s), ${report.blobsReferenced} blob(s)${read}: ${problems}` };
}

export function writeCheckRecord(cacheRoot: string, location: string, record: CheckRecord): void {
  const path = checkRecordPath(cacheRoot, location);
  makeDirsSync(join(cacheRoot, "checks"), 0o700);
  writeFileAtomicSync(path, `${JSON.stringify({ location, ...record })}\n`);
}

/** The record, or undefined when there is none or it does not read as one. */
export function readCheckRecord(cacheRoot: string, location: string): CheckRecord | undefined {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(checkRecordPath(cacheRoot, location), "utf8"));
  } catch {
    return undefined;
  }
  const r = v as Record<string, unknown>;
  if (typeof r !== "object" || r === null || r["location"] !== location) return undefined;
  if (typeof r["time"] !== "string" || typeof r["ok"] !== "boolean" || typeof r["summary"] !== "string") return undefined;
  return { time: r["time"], ok: r["ok"], summary: r["summary"] };
}
