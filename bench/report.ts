// The tables `npm run bench` prints: the issue 17 table of vaultik/restic ratios, main-thread
// CPU per GiB, which of the issue's targets are met, and every measure in detail. Pure
// arithmetic and formatting over the measurements bench/run.ts collects.

/** One value per round, in round order, for each measure. */
export type Series = Record<string, number[]>;

export interface Run {
  /** "corpus, machine" as the issue's table names it. */
  label: string;
  /** Bytes of the corpus: the new data of a full backup, the bytes a full restore writes. */
  bytes: number;
  vaultik: Series;
  /** Absent for vaultik-only scale runs. */
  restic?: Series;
}

/** Measure names; also the rows of the detailed table, whose history in bench/results uses them. */
export const M = {
  full: "full backup (s)",
  fullRss: "full backup peak RSS (MiB)",
  fullMain: "full backup main-thread CPU (s)",
  fullCpu: "full backup total CPU (s)",
  unchanged: "unchanged re-run (s)",
  unchangedRss: "unchanged re-run peak RSS (MiB)",
  unchangedMain: "unchanged re-run main-thread CPU (s)",
  size: "repository (MiB)",
  changed: "1% changed re-run (s)",
  changedRss: "1% changed re-run peak RSS (MiB)",
  restore: "full restore (s)",
  restoreRss: "restore peak RSS (MiB)",
  restoreMain: "restore main-thread CPU (s)",
  restoreCpu: "restore total CPU (s)",
} as const;

const GiB = 1024 ** 3;
/** The issue's memory target is in MB (10^6 bytes); GNU time and the history are in KiB/MiB. */
const MB_PER_MiB = 1.048576;
const DASH = "–";

export const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function med(s: Series | undefined, key: string): number | undefined {
  const xs = s?.[key];
  return xs && xs.length > 0 ? median(xs) : undefined;
}

/** Median over the rounds of vaultik/restic in that round: both ran in the same minutes. */
function ratio(run: Run, key: string): number | undefined {
  const a = run.vaultik[key];
  const b = run.restic?.[key];
  if (!a || !b) return undefined;
  const per = a.flatMap((x, i) => (b[i] === undefined ? [] : [x / b[i]!]));
  return per.length > 0 ? median(per) : undefined;
}

/** Peak RSS of a tool's backups in MB: the highest of the per-measure medians (full, unchanged, 1%). */
function backupRssMB(s: Series | undefined): number | undefined {
  const peaks = [M.fullRss, M.unchangedRss, M.changedRss].flatMap((k) => med(s, k) ?? []);
  return peaks.length > 0 ? Math.max(...peaks) * MB_PER_MiB : undefined;
}

function restoreRssMB(s: Series | undefined): number | undefined {
  const v = med(s, M.restoreRss);
  return v === undefined ? undefined : v * MB_PER_MiB;
}

/** Seconds of CPU per GiB of the run's corpus. */
function perGiB(run: Run, key: string): number | undefined {
  const v = med(run.vaultik, key);
  return v === undefined || run.bytes <= 0 ? undefined : v / (run.bytes / GiB);
}

const fmt = (v: number | undefined, digits: number) => (v === undefined ? DASH : v.toFixed(digits));

function rows(header: string[], body: string[][]): string {
  // An empty cell is "| |", as the issue writes the corner of its CPU table.
  const line = (cells: string[]) => `|${cells.map((c) => (c ? ` ${c} ` : " ")).join("|")}|`;
  return [line(header), line(header.map((_, i) => (i === 0 ? "---" : "---:"))), ...body.map(line)].join("\n");
}

/** The issue's table: one row per run that has restic beside vaultik. */
export function issueTable(runs: readonly Run[]): string {
  const header = ["corpus, machine", "full backup", "unchanged", "1% changed", "restore", "size", "peak RSS vaultik / restic (backup)", "peak RSS vaultik / restic (restore)"];
  const rss = (a: number | undefined, b: number | undefined) => `${fmt(a, 0)} / ${fmt(b, 0)} MB`;
  const body = runs
    .filter((r) => r.restic)
    .map((r) => [
      r.label,
      ...[M.full, M.unchanged, M.changed, M.restore, M.size].map((k) => fmt(ratio(r, k), 2)),
      rss(backupRssMB(r.vaultik), backupRssMB(r.restic)),
      rss(restoreRssMB(r.vaultik), restoreRssMB(r.restic)),
    ]);
  return rows(header, body);
}

/** Main-thread CPU per GiB (vaultik only: restic's threads are Go's, not one main thread) and total CPU. */
export function cpuTable(runs: readonly Run[]): string {
  const header = ["", "main-thread CPU s per GiB of new data (backup)", "main-thread CPU s per GiB written (restore)", "total CPU s"];
  const total = (s: Series | undefined) => `${fmt(med(s, M.fullCpu), 1)} / ${fmt(med(s, M.restoreCpu), 1)}`;
  const body: string[][] = [];
  for (const r of runs) {
    body.push([`vaultik, ${r.label}`, fmt(perGiB(r, M.fullMain), 2), fmt(perGiB(r, M.restoreMain), 2), total(r.vaultik)]);
    if (r.restic) body.push([`restic, ${r.label}`, DASH, DASH, total(r.restic)]);
  }
  return rows(header, body);
}

/** Scale runs (vaultik alone): absolute times, memory and main-thread CPU. */
export function scaleTable(runs: readonly Run[]): string {
  const header = [
    "run",
    "full backup s",
    "unchanged re-run s",
    "restore s",
    "peak RSS backup / restore",
    "main-thread CPU s backup / unchanged / restore",
    "main-thread CPU s per GiB backup / restore",
  ];
  const body = runs.map((r) => {
    const v = r.vaultik;
    return [
      r.label,
      fmt(med(v, M.full), 1),
      fmt(med(v, M.unchanged), 1),
      fmt(med(v, M.restore), 1),
      `${fmt(backupRssMB(v), 0)} / ${fmt(restoreRssMB(v), 0)} MB`,
      [M.fullMain, M.unchangedMain, M.restoreMain].map((k) => fmt(med(v, k), 2)).join(" / "),
      `${fmt(perGiB(r, M.fullMain), 2)} / ${fmt(perGiB(r, M.restoreMain), 2)}`,
    ];
  });
  return rows(header, body);
}

interface Target {
  name: string;
  limit: number;
  unit: string;
  /** Decimals of the measured value, and of the limit, as shown. */
  digits: number;
  limitDigits: number;
  value(run: Run): number | undefined;
}

const ratioTarget = (name: string, key: string, limit: number): Target => ({
  name: `${name} vaultik/restic`,
  limit,
  unit: "",
  digits: 2,
  limitDigits: 1,
  value: (r) => ratio(r, key),
});

/** Issue 17's targets (2 cores, medians of 3). */
const TARGETS: Target[] = [
  ratioTarget("full backup", M.full, 0.8),
  ratioTarget("unchanged re-run", M.unchanged, 0.6),
  ratioTarget("1% changed", M.changed, 0.8),
  ratioTarget("full restore", M.restore, 0.8),
  ratioTarget("repository size", M.size, 1.0),
  { name: "peak RSS, backup", limit: 256, unit: " MB", digits: 0, limitDigits: 0, value: (r) => backupRssMB(r.vaultik) },
  { name: "peak RSS, restore", limit: 256, unit: " MB", digits: 0, limitDigits: 0, value: (r) => restoreRssMB(r.vaultik) },
  { name: "main-thread CPU, backup", limit: 1.0, unit: " s/GiB", digits: 2, limitDigits: 1, value: (r) => perGiB(r, M.fullMain) },
  { name: "main-thread CPU, restore", limit: 1.0, unit: " s/GiB", digits: 2, limitDigits: 1, value: (r) => perGiB(r, M.restoreMain) },
];

/** Met or missed for each target the run measured, and a one-line verdict. Nothing asserts. */
export function targets(run: Run): { table: string; line: string } {
  const body: string[][] = [];
  const missed: string[] = [];
  for (const t of TARGETS) {
    const v = t.value(run);
    if (v === undefined) continue;
    const limit = `${t.limit.toFixed(t.limitDigits)}${t.unit}`;
    const shown = `${v.toFixed(t.digits)}${t.unit}`;
    // Compared as shown, so a row never reads "256 MB | missed".
    const met = Number(v.toFixed(t.digits)) <= t.limit;
    body.push([`${t.name} ≤ ${limit}`, shown, met ? "met" : "missed"]);
    if (!met) missed.push(`${t.name} ${shown} > ${limit}`);
  }
  const line = `issue 17 targets (${run.label}): ${body.length - missed.length} of ${body.length} met${missed.length ? `; missed: ${missed.join(", ")}` : ""}`;
  return { table: rows(["target", "measured", "met/missed"], body), line };
}

/** Every measure: medians, and against another tool (when given) the ratio of the medians. */
export function detailTable(a: Series, nameA: string, other?: { series: Series; name: string }): string {
  if (!other) return rows(["measure", nameA], Object.keys(a).map((key) => [key, fmt(med(a, key), 1)]));
  const body = Object.keys(a).map((key) => {
    const va = med(a, key);
    const vb = med(other.series, key);
    return [key, fmt(va, 1), fmt(vb, 1), va === undefined || vb === undefined ? DASH : (va / vb).toFixed(2)];
  });
  return rows(["measure", nameA, other.name, `${nameA}/${other.name}`], body);
}
