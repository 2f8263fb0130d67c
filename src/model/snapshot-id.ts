import { randomBytes } from "node:crypto";

// A snapshot id carries its UTC time and host in clear, so `snapshots` and retention work
// without the private key; nothing else about the snapshot is visible. Time first, so ids sort
// chronologically as strings.
//
//   20261123T105529Z_web-1.example.org_3f9a0c1d

export interface SnapshotName {
  id: string;
  time: Date;
  host: string;
}

const ID = /^(\d{8}T\d{6}Z)_([A-Za-z0-9.-]{1,64})_([0-9a-f]{8})$/;

/** Hostnames may hold anything; ids keep only what is safe in object keys and shells. */
export function sanitizeHost(host: string): string {
  const clean = host.replace(/[^A-Za-z0-9.-]+/g, "-").replace(/^[.-]+|[.-]+$/g, "").slice(0, 64);
  return clean === "" ? "unknown" : clean;
}

export function newSnapshotId(time: Date, host: string): string {
  const stamp = time.toISOString().replace(/\.\d+Z$/, "Z").replace(/[-:]/g, "");
  return `${stamp}_${sanitizeHost(host)}_${randomBytes(4).toString("hex")}`;
}

export function parseSnapshotId(id: string): SnapshotName | undefined {
  const m = ID.exec(id);
  if (!m) return undefined;
  const s = m[1]!;
  const time = new Date(`${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}T${s.slice(9, 11)}:${s.slice(11, 13)}:${s.slice(13, 15)}Z`);
  if (Number.isNaN(time.getTime())) return undefined;
  return { id, time, host: m[2]! };
}
