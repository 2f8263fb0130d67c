import cliProgress from "cli-progress";
import { formatBytes } from "../util/units.js";

// A progress line on a terminal: files, bytes, rate and ETA. cli-progress owns the redrawing
// (TTY detection, throttling, clearing on stop); we only feed it numbers. The total is an
// estimate from a scan that runs beside the work, so the ETA appears once the scan is done.

export interface ProgressSource {
  files: () => number;
  bytes: () => number;
  /** Known totals, when a scan has finished. */
  totals: () => { files: number; bytes: number } | undefined;
}

export function startProgress(label: string, source: ProgressSource, stream: NodeJS.WriteStream = process.stderr): () => void {
  if (!stream.isTTY) return () => {};
  const started = Date.now();
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: `${label} {bar} {percentage}% | {files} files | {done} of {total_bytes} | {rate} | ETA {eta_text}`,
      barsize: 20,
      hideCursor: true,
      clearOnComplete: true,
      fps: 5,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(1, 0, payload());
  const timer = setInterval(update, 250);
  timer.unref();

  function payload() {
    const totals = source.totals();
    const done = source.bytes();
    const seconds = (Date.now() - started) / 1000;
    const rate = seconds > 0 ? done / seconds : 0;
    const eta = totals && rate > 0 ? Math.max(0, (totals.bytes - done) / rate) : undefined;
    return {
      files: totals ? `${source.files()}/${totals.files}` : String(source.files()),
      done: formatBytes(done),
      total_bytes: totals ? formatBytes(totals.bytes) : "?",
      rate: `${formatBytes(rate)}/s`,
      eta_text: eta === undefined ? "…" : `${Math.round(eta)}s`,
    };
  }

  function update() {
    const totals = source.totals();
    bar.setTotal(Math.max(1, totals?.bytes ?? source.bytes() * 2));
    bar.update(Math.min(source.bytes(), totals?.bytes ?? Infinity), payload());
  }

  return () => {
    clearInterval(timer);
    bar.stop();
  };
}
