import type { CheckRecord } from "../check/last-check.js";
import type { X25519Identity } from "../crypto/keys.js";
import type { Alert } from "../daemon/alerts.js";
import { errorMessage, IntegrityError } from "../errors.js";
import type { RetentionPolicy } from "../prune/policy.js";
import { applyRetention, isEmptyPolicy } from "../prune/retention.js";
import type { Repository, RunMarker, SnapshotObject } from "../repo/repository.js";
import type { SnapshotCache } from "../snapshot/cache.js";
import { HostAlerts } from "./host-alerts.js";
import { compareHosts, hostStatus, lastRun, runsByHost, type HostStatus, type RunView } from "./status.js";
import { TaskPool } from "../util/pool.js";
import { summarize, SummaryCache } from "./summary.js";

// The server's picture of every repository: the snapshot and run lists of the last poll and a
// summary per snapshot (summary.ts). Polls replace the lists; the views below are built from
// them on each request, with the clock of that moment.

export interface FleetRepo {
  /** The name in URLs (docs/SERVE.md). */
  slug: string;
  repo: Repository;
  /** The config's retention; empty: none configured. */
  retention: RetentionPolicy;
  /** Per host, its own over `retention`: the config's apps (each app is a host). */
  hostRetention?: ReadonlyMap<string, RetentionPolicy>;
  staleAfterMs: number;
  /** Per-host stale_after (config `serve.hosts`). */
  hostStaleAfterMs: ReadonlyMap<string, number>;
  /** Where the repository's alerts go (its config's `alerts`), if anywhere. */
  alerts?: { send(alert: Alert): Promise<void> };
  /** The last `vaultik check` of this repository on this machine. */
  lastCheck?: () => CheckRecord | undefined;
}

/** Hosts whose new snapshots are read at once. */
const SUMMARY_WORKERS = 3;

export interface FleetOptions {
  repos: readonly FleetRepo[];
  identities: readonly X25519Identity[];
  cache?: SnapshotCache;
  now?: () => number;
  /** Reminder interval while a host stays in trouble (config `alerts.repeat_after`). */
  repeatAfterMs?: number;
  summaries?: SummaryCache;
  log?: (line: string) => void;
}

interface RepoState {
  spec: FleetRepo;
  snapshots: SnapshotObject[];
  runs: RunMarker[];
  lastPoll: number | null;
  error: string | null;
  pollErrors: number;
}

export interface SnapshotView {
  id: string;
  time: string;
  size: number | null;
  newBytes: number | null;
  files: number | null;
}

export interface HostView {
  repo: string;
  host: string;
  status: HostStatus;
  staleAfterSeconds: number;
  latest: (SnapshotView & { ageSeconds: number }) | null;
  snapshots: number;
  lastRun: { state: RunView["state"]; id: string; started: string; lastBeat: string | null } | null;
}

export class Fleet {
  readonly #o: FleetOptions;
  readonly #now: () => number;
  readonly #repos: Map<string, RepoState>;
  readonly #summaries: SummaryCache;
  readonly #alerts: HostAlerts;

  constructor(o: FleetOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
    this.#summaries = o.summaries ?? new SummaryCache();
    this.#alerts = new HostAlerts(o.repeatAfterMs ?? 24 * 3600_000);
    this.#repos = new Map(o.repos.map((spec) => [spec.slug, { spec, snapshots: [], runs: [], lastPoll: null, error: null, pollErrors: 0 }]));
  }

  get summaryCount(): number {
    return this.#summaries.size;
  }

  /** Lists every repository, summarizes new snapshots, then sends the alerts the new picture calls for. */
  async poll(signal?: AbortSignal): Promise<void> {
    for (const state of this.#repos.values()) {
      try {
        const [snapshots, runs] = [await state.spec.repo.listSnapshots({ signal }), await state.spec.repo.runs({ signal })];
        // Shown at once; sizes of snapshots not summarized yet read null until they are (a first
        // poll of a large fleet takes minutes).
        Object.assign(state, { snapshots, runs, error: null });
        await this.#summarizeNew(state.spec, snapshots, signal);
      } catch (err) {
        if (signal?.aborted) throw err;
        state.error = errorMessage(err).split("\n", 1)[0] ?? "poll failed";
        state.pollErrors++;
        this.#o.log?.(`poll of ${state.spec.slug} (${state.spec.repo.location}) failed: ${state.error}`);
      }
      state.lastPoll = this.#now();
      await this.#alert(state);
    }
  }

  /**
   * Summarizes the snapshots not seen before. A host's snapshots go in time order (each needs
   * its predecessor, then in the disk cache); hosts go SUMMARY_WORKERS at a time, so downloads
   * and decryption overlap the SQLite work.
   */
  async #summarizeNew(spec: FleetRepo, snapshots: readonly SnapshotObject[], signal?: AbortSignal): Promise<void> {
    const byHost = new Map<string, [SnapshotObject, SnapshotObject | undefined][]>();
    for (const pair of withPrevious(snapshots)) {
      if (this.#summaries.get(spec.repo, pair[0], pair[1]) !== undefined) continue;
      const list = byHost.get(pair[0].host);
      if (list === undefined) byHost.set(pair[0].host, [pair]);
      else list.push(pair);
    }
    const pool = new TaskPool(SUMMARY_WORKERS);
    for (const chain of byHost.values()) {
      await pool.run(async () => {
        for (const [s, previous] of chain) await this.#summarizeOne(spec, s, previous, signal);
      });
    }
    await pool.drain();
  }

  async #summarizeOne(spec: FleetRepo, s: SnapshotObject, previous: SnapshotObject | undefined, signal?: AbortSignal): Promise<void> {
    try {
      this.#summaries.set(spec.repo, s, previous, await summarize(spec.repo, s, previous, this.#o.identities, { cache: this.#o.cache, signal }));
    } catch (err) {
      if (signal?.aborted) throw err;
      this.#o.log?.(`snapshot ${s.id} of ${spec.slug} cannot be summarized: ${errorMessage(err).split("\n", 1)[0]}`);
      // Unreadable (a wrong key, a damaged object) stays so: not fetched again at every poll.
      // A store failure is retried at the next one.
      if (err instanceof IntegrityError) this.#summaries.set(spec.repo, s, previous, null);
    }
  }

  async #alert(state: RepoState): Promise<void> {
    const sink = state.spec.alerts;
    const now = this.#now();
    for (const h of this.#hostViews(state, now)) {
      const alerts = this.#alerts.decide({ ...h, latestTime: h.latest === null ? null : Date.parse(h.latest.time), lastRun: h.run }, now);
      for (const a of alerts) {
        this.#o.log?.(`alert ${a.kind}: ${a.message}`);
        await sink?.send(a);
      }
    }
  }

  #hostViews(state: RepoState, now: number): (HostView & { run: RunView | null })[] {
    const byHost = new Map<string, SnapshotObject[]>();
    for (const s of state.snapshots) {
      const list = byHost.get(s.host);
      if (list === undefined) byHost.set(s.host, [s]);
      else list.push(s);
    }
    const runs = runsByHost(state.runs);
    const existing = new Set(state.snapshots.map((s) => s.id));
    const hosts = new Set([...byHost.keys(), ...runs.keys()]);
    return [...hosts].map((host) => {
      const list = byHost.get(host) ?? [];
      const latest = list[list.length - 1];
      const staleAfterMs = this.staleAfterMs(state.spec, host);
      const run = lastRun(runs.get(host), existing, now);
      return {
        repo: state.spec.slug,
        host,
        status: hostStatus(latest, staleAfterMs, now, state.error !== null),
        staleAfterSeconds: Math.round(staleAfterMs / 1000),
        latest: latest === undefined ? null : { ...this.#view(state.spec, latest, list[list.length - 2]), ageSeconds: Math.max(0, Math.round((now - latest.time.getTime()) / 1000)) },
        snapshots: list.length,
        lastRun: run === null ? null : { state: run.state, id: run.id, started: iso(run.started), lastBeat: run.lastBeat === null ? null : iso(run.lastBeat) },
        run,
      };
    });
  }

  staleAfterMs(spec: FleetRepo, host: string): number {
    return spec.hostStaleAfterMs.get(host) ?? spec.staleAfterMs;
  }

  #view(spec: FleetRepo, s: SnapshotObject, previous: SnapshotObject | undefined): SnapshotView {
    const sum = this.#summaries.get(spec.repo, s, previous) ?? null;
    return { id: s.id, time: s.time.toISOString(), size: sum?.size ?? null, newBytes: sum?.newBytes ?? null, files: sum?.files ?? null };
  }

  overview(): Record<string, unknown> {
    const now = this.#now();
    const hosts: HostView[] = [];
    const repositories = [...this.#repos.values()].map((state) => {
      const views = this.#hostViews(state, now).map(({ run: _run, ...h }) => h);
      hosts.push(...views);
      return {
        repo: state.spec.slug,
        location: state.spec.repo.location,
        lastPoll: state.lastPoll === null ? null : iso(state.lastPoll),
        error: state.error,
        totals: { hosts: views.length, snapshots: state.snapshots.length, bytes: views.reduce((n, h) => n + (h.latest?.size ?? 0), 0) },
      };
    });
    return {
      generatedAt: iso(now),
      pollErrors: [...this.#repos.values()].reduce((n, s) => n + s.pollErrors, 0),
      repositories,
      hosts: hosts.sort(compareHosts),
    };
  }

  /** The host page's data; undefined for a host the repository has neither snapshots nor runs of. */
  host(slug: string, host: string): Record<string, unknown> | undefined {
    const state = this.#repos.get(slug);
    if (state === undefined) return undefined;
    const now = this.#now();
    const view = this.#hostViews(state, now).find((h) => h.host === host);
    if (view === undefined) return undefined;
    const list = state.snapshots.filter((s) => s.host === host);
    const policy = state.spec.hostRetention?.get(host) ?? state.spec.retention;
    const empty = isEmptyPolicy(policy);
    const kept = empty ? undefined : applyRetention(list, policy, new Date(now));
    return {
      repo: slug,
      host,
      status: view.status,
      staleAfterSeconds: view.staleAfterSeconds,
      snapshots: list.map((s, i) => this.#view(state.spec, s, list[i - 1])),
      lastRun: view.lastRun,
      retention: {
        policy: empty ? null : policy,
        keep: kept === undefined ? list.map((s) => s.id).reverse() : kept.keep.map((s) => s.id),
        forget: kept === undefined ? [] : kept.remove.map((s) => s.id),
        reasons: kept === undefined ? {} : Object.fromEntries(kept.reasons),
      },
      check: state.spec.lastCheck?.() ?? null,
    };
  }

  repo(slug: string): FleetRepo | undefined {
    return this.#repos.get(slug)?.spec;
  }

  /** A snapshot the last poll listed, with its host's neighbours. */
  snapshot(slug: string, id: string): { snapshot: SnapshotObject; previous?: SnapshotObject; next?: SnapshotObject; view: SnapshotView } | undefined {
    const state = this.#repos.get(slug);
    const s = state?.snapshots.find((x) => x.id === id);
    if (state === undefined || s === undefined) return undefined;
    const list = state.snapshots.filter((x) => x.host === s.host);
    const i = list.indexOf(s);
    return { snapshot: s, previous: list[i - 1], next: list[i + 1], view: this.#view(state.spec, s, list[i - 1]) };
  }

  /** For /metrics: every host's view and each repository's poll errors. */
  metricsView(): { hosts: HostView[]; repos: { repo: string; pollErrors: number; lastPoll: number | null }[] } {
    const now = this.#now();
    const states = [...this.#repos.values()];
    return {
      hosts: states.flatMap((s) => this.#hostViews(s, now)),
      repos: states.map((s) => ({ repo: s.spec.slug, pollErrors: s.pollErrors, lastPoll: s.lastPoll })),
    };
  }
}

/** Each snapshot with the same host's snapshot before it (the list is oldest first). */
function* withPrevious(snapshots: readonly SnapshotObject[]): Generator<[SnapshotObject, SnapshotObject | undefined]> {
  const last = new Map<string, SnapshotObject>();
  for (const s of snapshots) {
    yield [s, last.get(s.host)];
    last.set(s.host, s);
  }
}

const iso = (ms: number) => new Date(ms).toISOString();
