// The daemon's HTTP face: a health probe for Docker/Kubernetes, status and history as JSON for
// `vaultik status` and dashboards, and Prometheus metrics. Read-only by design: nothing here can
// start, stop or change a backup, so the only thing a token protects is information.

import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { DaemonMetrics } from "./metrics.js";
import { isHealthy, type DaemonState } from "./state.js";
import { ConfigError, errorMessage } from "../errors.js";
import { listen } from "../util/listen.js";

/** One app of the daemon (issue 19): what /status?app=, /history?app= and /backups/<app> show. */
export interface AppStatus {
  name: string;
  /** Its snapshot host. */
  host: string;
  state: DaemonState;
  /** Its snapshots in the repository, newest first, as of its last run. */
  backups: readonly { id: string; key: string; size: number; mtime: number }[];
}

export interface StatusServerOptions {
  host: string;
  /** 0 lets the system choose; the chosen port is in the result. */
  port: number;
  /** When set, every endpoint but /health requires `Authorization: Bearer <token>` or `X-API-Key: <token>`. */
  token?: string;
  getState: () => DaemonState;
  /** The app named in ?app=, /status/<app> or /backups/<app>; undefined for an unknown name. */
  getApp?: (name: string) => AppStatus | undefined;
  metrics: DaemonMetrics;
  /** /health turns unhealthy when the last success is older than this. */
  staleAfterMs: number;
  /** Clock for /health, in ms since the epoch. Default Date.now. */
  now?: () => number;
  /** Receives one line per request that failed on the server side; never per request. */
  log?: (line: string) => void;
}

export interface StatusServer {
  /** Base URL, e.g. http://127.0.0.1:9812 */
  url: string;
  port: number;
  close(): Promise<void>;
}

type Handler = (o: StatusServerOptions, res: ServerResponse, app?: string) => void | Promise<void>;

const ROUTES = new Map<string, { handler: Handler; public: boolean }>([
  // Public so that container probes work without being handed a secret; it reveals only a
  // one-line reason, which the logs carry anyway.
  ["/health", { handler: health, public: true }],
  ["/status", { handler: status, public: false }],
  ["/history", { handler: history, public: false }],
  ["/metrics", { handler: metrics, public: false }],
  ["/backups", { handler: backups, public: false }],
]);

/** `/status/web` is `/status?app=web`; `/backups/web` the only form of that one. */
const APP_PATHS = ["/status", "/backups"];

export async function startStatusServer(options: StatusServerOptions): Promise<StatusServer> {
  if (options.token === "") {
    // An empty token would either disable auth or lock everyone out; both are surprises.
    throw new ConfigError("status.token", "must not be empty");
  }
  const tokenDigest = options.token === undefined ? undefined : sha256(options.token);
  const log = options.log ?? (() => {});

  const server = createServer((req, res) => {
    handle(options, tokenDigest, req, res).catch((err: unknown) => {
      // Only the path and the error: never headers, which hold the token.
      log(`status server: ${req.method ?? "?"} ${pathOf(req)} failed: ${errorText(err)}`);
      if (!res.headersSent) sendJson(res, 500, { error: "internal error" });
      else res.destroy();
    });
  });
  // Every answer is small and immediate, so a client that trickles its request is either broken
  // or hostile; don't let it hold a socket for Node's default five minutes.
  server.requestTimeout = 10_000;
  server.headersTimeout = 10_000;

  return listen(server, options.host, options.port);
}

async function handle(o: StatusServerOptions, tokenDigest: Buffer | undefined, req: IncomingMessage, res: ServerResponse): Promise<void> {
  // A server that knows no apps (getApp unset) routes exactly as before apps existed.
  const { path, app } = o.getApp ? routeOf(req) : { path: pathOf(req), app: undefined };
  const route = ROUTES.get(path);
  if (route === undefined || (path === "/backups" && app === undefined)) return sendJson(res, 404, { error: "not found" });
  if (req.method !== "GET") {
    res.setHeader("Allow", "GET");
    return sendJson(res, 405, { error: "method not allowed" });
  }
  if (!route.public && tokenDigest !== undefined && !authorized(req, tokenDigest)) {
    res.setHeader("WWW-Authenticate", "Bearer");
    return sendJson(res, 401, { error: "unauthorized" });
  }
  if (app !== undefined && o.getApp?.(app) === undefined) return sendJson(res, 404, { error: `unknown app ${JSON.stringify(app)}`, app });
  await route.handler(o, res, app);
}

/** The route and the app it names, from `?app=NAME` or a `/status/NAME`-style path. */
function routeOf(req: IncomingMessage): { path: string; app?: string } {
  const path = pathOf(req);
  const query = (req.url ?? "").split("?")[1];
  const fromQuery = query === undefined ? null : new URLSearchParams(query).get("app");
  for (const base of APP_PATHS) {
    if (path.startsWith(`${base}/`) && path.length > base.length + 1) return { path: base, app: safeDecode(path.slice(base.length + 1)) };
  }
  return fromQuery === null ? { path } : { path, app: fromQuery };
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function health(o: StatusServerOptions, res: ServerResponse): void {
  const { healthy, reason } = isHealthy(o.getState(), (o.now ?? Date.now)(), o.staleAfterMs);
  sendJson(res, healthy ? 200 : 503, { status: healthy ? "ok" : "unhealthy", reason });
}

function status(o: StatusServerOptions, res: ServerResponse, app?: string): void {
  if (app !== undefined) {
    const a = o.getApp!(app)!;
    return sendJson(res, 200, { app: a.name, host: a.host, ...statusBody(a.state), snapshots: a.backups.length });
  }
  const s = o.getState();
  const apps = s.apps === undefined ? undefined : Object.fromEntries(Object.entries(s.apps).map(([name, a]) => [name, appBody(o, name, a)]));
  sendJson(res, 200, { ...statusBody(s), apps });
}

function appBody(o: StatusServerOptions, name: string, state: DaemonState): Record<string, unknown> {
  const a = o.getApp?.(name);
  const { pid: _pid, version: _version, startedAt: _startedAt, ...rest } = statusBody(state);
  return { host: a?.host, ...rest, snapshots: a?.backups.length };
}

/**
 * Listed field by field rather than spreading the state, so /status keeps its documented shape
 * (and stays small) when DaemonState grows; the history has its own endpoint.
 */
function statusBody(s: DaemonState): Record<string, unknown> {
  return {
    state: s.state,
    pid: s.pid,
    version: s.version,
    startedAt: s.startedAt,
    current: s.current,
    lastRun: s.lastRun,
    lastSuccess: s.lastSuccess,
    nextRun: s.nextRun,
    dirtyPaths: s.dirtyPaths,
    consecutiveFailures: s.consecutiveFailures,
  };
}

function history(o: StatusServerOptions, res: ServerResponse, app?: string): void {
  sendJson(res, 200, app === undefined ? o.getState().history : o.getApp!(app)!.state.history);
}

/** DokSnapShotter's GET /backups/:app shape (key, size, size_mb, last_modified), plus our id. */
function backups(o: StatusServerOptions, res: ServerResponse, app?: string): void {
  const MiB = 1024 * 1024;
  sendJson(res, 200, o.getApp!(app!)!.backups.map((b) => ({
    id: b.id,
    key: b.key,
    size: b.size,
    size_mb: Math.round((b.size / MiB) * 100) / 100,
    last_modified: new Date(b.mtime).toISOString(),
  })));
}

async function metrics(o: StatusServerOptions, res: ServerResponse): Promise<void> {
  const body = await o.metrics.text();
  res.writeHead(200, { "Content-Type": o.metrics.contentType, "Cache-Control": "no-store" });
  res.end(body);
}

function authorized(req: IncomingMessage, tokenDigest: Buffer): boolean {
  return tokenMatches(req, tokenDigest);
}

/**
 * Whether the request carries the token as `Authorization: Bearer <token>` or `X-API-Key:
 * <token>` (what Uptime Kuma, Homepage and most dashboards' "API key" fields send).
 */
export function tokenMatches(req: IncomingMessage, tokenDigest: Buffer): boolean {
  const apiKey = req.headers["x-api-key"];
  // Both are compared, so which header was sent does not show in the timing either.
  const byKey = typeof apiKey === "string" && apiKey.trim() !== "" && timingSafeEqual(sha256(apiKey.trim()), tokenDigest);
  return bearerMatches(req.headers.authorization, tokenDigest) || byKey;
}

/** Whether an Authorization header carries the bearer token whose SHA-256 is `tokenDigest`. */
export function bearerMatches(header: string | undefined, tokenDigest: Buffer): boolean {
  const m = /^Bearer +(\S+) *$/i.exec(header ?? "");
  if (!m?.[1]) return false;
  // Comparing fixed-size digests keeps both the content and the length of the token out of the
  // response timing.
  return timingSafeEqual(sha256(m[1]), tokenDigest);
}

function sendJson(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { "Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store" });
  res.end(`${JSON.stringify(body)}\n`);
}

/** The request path without its query; anything unusual simply matches no route. */
function pathOf(req: IncomingMessage): string {
  return (req.url ?? "/").split("?", 1)[0] ?? "/";
}

export function sha256(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}

function errorText(err: unknown): string {
  const text = errorMessage(err);
  return text.split("\n", 1)[0] ?? "";
}
