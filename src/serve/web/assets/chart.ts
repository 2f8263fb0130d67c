// The host's snapshots over time: size as a line (left axis), new data as bars (right axis).
import type { SnapshotSummary } from "./api.js";
import { h } from "./dom.js";
import { absolute, bytes } from "./format.js";
import uPlot from "./uPlot.esm.js";

const SIZE = "#2563eb";
const NEW = "#0d9488";
/** Axis steps in binary units (1, 2, 5 × 1024^k), so ticks read "2 GiB", not "1.9 GiB". */
const BINARY_STEPS = [0, 1, 2, 3, 4, 5].flatMap((k) => [1, 2, 5, 10, 20, 50, 100, 200, 500].map((m) => m * 1024 ** k));

export function sizeChart(snapshots: SnapshotSummary[]): HTMLElement {
  const box = h("div", { class: "chart", role: "img", "aria-label": "Size and new data per snapshot" });
  const xs = snapshots.map((s) => Date.parse(s.time) / 1000);
  const size = snapshots.map((s) => s.size);
  const added = snapshots.map((s) => s.newBytes);
  const axisBytes = (_u: uPlot, splits: number[]) => splits.map((v) => bytes(v));
  const legendBytes = (_u: uPlot, v: number | null) => bytes(v);
  const opts: uPlot.Options = {
    width: 800,
    height: 240,
    cursor: { drag: { x: false, y: false } },
    scales: {
      // Half a bar of room at each end, so the first and last bars are not cut by the plot's edge.
      x: {
        time: true,
        range: (_u, min, max) => {
          const pad = max > min ? (max - min) * 0.04 : 12 * 3600;
          return [min - pad, max + pad];
        },
      },
      size: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] }, added: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    axes: [
      { stroke: "#475569", grid: { stroke: "#e2e8f0" } },
      { scale: "size", stroke: SIZE, values: axisBytes, incrs: BINARY_STEPS, size: 70, grid: { stroke: "#e2e8f0" } },
      { scale: "added", side: 1, stroke: NEW, values: axisBytes, incrs: BINARY_STEPS, size: 70, grid: { show: false } },
    ],
    series: [
      { label: "Time", value: (_u, v) => (v === null ? "—" : absolute(new Date(v * 1000).toISOString())) },
      { label: "Size", scale: "size", stroke: SIZE, width: 2, fill: "rgba(37, 99, 235, 0.08)", points: { show: true, size: 6 }, value: legendBytes },
      { label: "New data", scale: "added", stroke: NEW, fill: "rgba(13, 148, 136, 0.45)", width: 1, paths: uPlot.paths.bars!({ size: [0.5, 24] }), points: { show: false }, value: legendBytes },
    ],
  };
  const plot = new uPlot(opts, [xs, size, added] as uPlot.AlignedData, box);
  // Fit the card's width once it is laid out, and again when the window changes.
  const fit = () => {
    const width = box.clientWidth;
    if (width > 0 && width !== plot.width) plot.setSize({ width, height: 240 });
  };
  new ResizeObserver(fit).observe(box);
  return box;
}
