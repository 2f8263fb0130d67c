import { Gauge, Registry } from "prom-client";
import type { Fleet } from "./fleet.js";

// Prometheus metrics of the fleet, on a private Registry as the daemon's (daemon/metrics.ts):
// read from the fleet's last poll at each scrape, so they cannot drift from what the page shows.

export class FleetMetrics {
  readonly registry = new Registry();
  readonly contentType: string;

  constructor(fleet: Fleet) {
    this.contentType = this.registry.contentType;
    const registers = [this.registry];
    const perHost = (name: string, help: string, value: (h: ReturnType<Fleet["metricsView"]>["hosts"][number]) => number | undefined) =>
      new Gauge({
        name,
        help,
        labelNames: ["repo", "host"] as const,
        registers,
        collect() {
          // Rebuilt at each scrape: a host whose snapshots were all forgotten must disappear.
          this.reset();
          for (const h of fleet.metricsView().hosts) {
            const v = value(h);
            if (v !== undefined) this.set({ repo: h.repo, host: h.host }, v);
          }
        },
      });
    perHost("vaultik_serve_last_snapshot_timestamp_seconds", "Unix time of the host's latest snapshot.", (h) =>
      h.latest === null ? undefined : Date.parse(h.latest.time) / 1000,
    );
    perHost("vaultik_serve_snapshots", "Snapshots of the host in the repository.", (h) => h.snapshots);
    perHost("vaultik_serve_latest_size_bytes", "Size of the files in the host's latest snapshot.", (h) => h.latest?.size ?? undefined);
    perHost("vaultik_serve_stale", "1 when the host's latest snapshot is older than its stale_after (or it has none), else 0.", (h) => (h.status === "stale" ? 1 : 0));
    const perRepo = (name: string, help: string, value: (r: ReturnType<Fleet["metricsView"]>["repos"][number]) => number | undefined) =>
      new Gauge({
        name,
        help,
        labelNames: ["repo"] as const,
        registers,
        collect() {
          this.reset();
          for (const r of fleet.metricsView().repos) {
            const v = value(r);
            if (v !== undefined) this.set({ repo: r.repo }, v);
          }
        },
      });
    perRepo("vaultik_serve_poll_errors_total", "Polls of the repository that failed since the server started.", (r) => r.pollErrors);
    perRepo("vaultik_serve_last_poll_timestamp_seconds", "Unix time of the repository's last poll.", (r) => (r.lastPoll === null ? undefined : r.lastPoll / 1000));
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
