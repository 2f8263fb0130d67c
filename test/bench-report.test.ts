// Issue 17 (benchmark reporting): `npm run bench` prints the issue's table of vaultik/restic
// ratios, main-thread CPU per GiB and which targets are met. The numbers come from slow runs,
// so the arithmetic and the table shapes are checked here on crafted measurements.
import { describe, expect, it } from "vitest";
import { M, cpuTable, issueTable, scaleTable, targets, type Run } from "../bench/report.js";

const GiB = 1024 ** 3;

/** Three rounds where the median of per-round ratios (1.0) differs from the ratio of medians. */
function run(): Run {
  return {
    label: "bench corpus 2.0 GiB / 10 files, 2 cores",
    bytes: 2 * GiB,
    vaultik: {
      [M.full]: [10, 30, 40],
      [M.fullRss]: [244.140625, 200, 244.140625],
      [M.fullMain]: [1.0, 2.0, 3.0],
      [M.fullCpu]: [9, 10, 11],
      [M.unchanged]: [1, 1, 1],
      [M.unchangedRss]: [100, 250, 100],
      [M.size]: [90, 90, 90],
      [M.changed]: [2, 2, 2],
      [M.restore]: [8, 8, 8],
      [M.restoreRss]: [300, 300, 300],
      [M.restoreMain]: [4.0, 4.0, 4.0],
      [M.restoreCpu]: [6, 7, 8],
    },
    restic: {
      [M.full]: [10, 30, 20],
      [M.fullRss]: [150, 150, 150],
      [M.fullCpu]: [20, 21, 22],
      [M.unchanged]: [2, 2, 2],
      [M.unchangedRss]: [100, 100, 100],
      [M.size]: [100, 100, 100],
      [M.changed]: [2.5, 2.5, 2.5],
      [M.restore]: [10, 10, 10],
      [M.restoreRss]: [100, 100, 100],
      [M.restoreCpu]: [5, 5, 5],
    },
  };
}

describe("the issue's tables", () => {
  it("prints one row per run of medians of per-round vaultik/restic ratios and peak RSS in MB", () => {
    const lines = issueTable([run()]).split("\n");
    expect(lines[0]).toBe(
      "| corpus, machine | full backup | unchanged | 1% changed | restore | size | peak RSS vaultik / restic (backup) | peak RSS vaultik / restic (restore) |",
    );
    expect(lines[1]).toBe("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    // full: per-round ratios 1, 1, 2 → 1.00 (the ratio of medians would be 30/20 = 1.50).
    // backup RSS: the highest of the backup runs' medians, 244.140625 MiB = 256 MB.
    expect(lines[2]).toBe("| bench corpus 2.0 GiB / 10 files, 2 cores | 1.00 | 0.50 | 0.80 | 0.80 | 0.90 | 256 / 157 MB | 315 / 105 MB |");
    expect(lines).toHaveLength(3);
  });

  it("gives vaultik's main-thread CPU per GiB of the full backup and the restore, and total CPU", () => {
    const lines = cpuTable([run()]).split("\n");
    expect(lines[0]).toBe(
      "| | main-thread CPU s per GiB of new data (backup) | main-thread CPU s per GiB written (restore) | total CPU s |",
    );
    // 2 s of main thread over 2 GiB, 4 s over 2 GiB; total CPU of backup / restore.
    expect(lines[2]).toBe("| vaultik, bench corpus 2.0 GiB / 10 files, 2 cores | 1.00 | 2.00 | 10.0 / 7.0 |");
    expect(lines[3]).toBe("| restic, bench corpus 2.0 GiB / 10 files, 2 cores | – | – | 21.0 / 5.0 |");
  });

  it("says met or missed for each target, the limits included", () => {
    const t = targets(run());
    expect(t.table.split("\n").slice(2)).toEqual([
      "| full backup vaultik/restic ≤ 0.8 | 1.00 | missed |",
      "| unchanged re-run vaultik/restic ≤ 0.6 | 0.50 | met |",
      "| 1% changed vaultik/restic ≤ 0.8 | 0.80 | met |",
      "| full restore vaultik/restic ≤ 0.8 | 0.80 | met |",
      "| repository size vaultik/restic ≤ 1.0 | 0.90 | met |",
      "| peak RSS, backup ≤ 256 MB | 256 MB | met |",
      "| peak RSS, restore ≤ 256 MB | 315 MB | missed |",
      "| main-thread CPU, backup ≤ 1.0 s/GiB | 1.00 s/GiB | met |",
      "| main-thread CPU, restore ≤ 1.0 s/GiB | 2.00 s/GiB | missed |",
    ]);
    expect(t.line).toBe(
      "issue 17 targets (bench corpus 2.0 GiB / 10 files, 2 cores): 6 of 9 met; missed: full backup vaultik/restic 1.00 > 0.8, peak RSS, restore 315 MB > 256 MB, main-thread CPU, restore 2.00 s/GiB > 1.0 s/GiB",
    );
  });

  it("reports a vaultik-only scale run without the ratios it cannot have", () => {
    const r: Run = {
      label: "1000 small files",
      bytes: GiB / 4,
      vaultik: {
        [M.full]: [50],
        [M.fullRss]: [250],
        [M.fullMain]: [0.5],
        [M.fullCpu]: [3],
        [M.unchanged]: [7.25],
        [M.unchangedRss]: [120],
        [M.unchangedMain]: [0.75],
      },
    };
    expect(issueTable([r])).toBe(issueTable([]));
    const lines = scaleTable([r]).split("\n");
    expect(lines[0]).toBe(
      "| run | full backup s | unchanged re-run s | restore s | peak RSS backup / restore | main-thread CPU s backup / unchanged / restore | main-thread CPU s per GiB backup / restore |",
    );
    expect(lines[2]).toBe("| 1000 small files | 50.0 | 7.3 | – | 262 / – MB | 0.50 / 0.75 / – | 2.00 / – |");
    const t = targets(r);
    expect(t.table.split("\n").slice(2)).toEqual([
      "| peak RSS, backup ≤ 256 MB | 262 MB | missed |",
      "| main-thread CPU, backup ≤ 1.0 s/GiB | 2.00 s/GiB | missed |",
    ]);
    expect(t.line).toMatch(/^issue 17 targets \(1000 small files\): 0 of 2 met; missed: /);
  });
});
