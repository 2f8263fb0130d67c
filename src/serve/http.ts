import { timingSafeEqual } from "node:crypto";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { X25519Identity } from "../crypto/keys.js";
import { sha256, tokenMatches } from "../daemon/status-server.js";
import { ConfigError, errorMessage, IntegrityError, NotFoundError, StoreError, UsageError } from "../errors.js";
import type { SnapshotCache } from "../snapshot/cache.js";
import * as browse from "./browse.js";
import type { Fleet } from "./fleet.js";
import { FleetMetrics } from "./metrics.js";
import { listen } from "../util/listen.js";
import { assetParam, hostParam, idParam, pathParam, pathSegments, patternParam, repoParam } from "./params.js";

// The HTTP face of `vaultik serve` (docs/SERVE.md): the page, its assets, the JSON API, metrics.
// Read-only: nothing here writes to a repository. Every response, errors included, carries the
// security headers; a request without the configured credential gets only /healthz.

export type Auth = { kind: "token"; token: string } | { kind: "basic"; user: string; password: string };

export interface ServeServerOptions {
  fleet: Fleet;
  identities: readonly X25519Identity[];
  cache?: SnapshotCache;
  host: string;
  port: number;
  auth?: Auth;
  /** Where index.html and assets/ are; default the package's dist/serve/web (src/serve/web from source). */
  webDir?: string;
  log?: (line: string) => void;
}

export interface ServeServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

export const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".woff2": "font/woff2",
  ".json": "application/json; charset=utf-8",
  ".map": "application/json; charset=utf-8",
};

const DEFAULT_WEB_DIR = fileURLToPath(new URL("./web/", import.meta.url));

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export async function startServeServer(o: ServeServerOptions): Promise<ServeServer> {
  const metrics = new FleetMetrics(o.fleet);
  const check = credentialCheck(o.auth);
  const log = o.log ?? (() => {});
  const server = createServer((req, res) => {
    securityHeaders(res);
    handle(o, metrics, check, req, res).catch((err: unknown) => {
      const { status, message } = describe(err);
      // Only method and path: the headers hold the credential, the query may hold a path.
      // A client that went away mid-download is not the server's failure.
      if (status >= 500 && !res.destroyed) log(`${req.method ?? "?"} ${(req.url ?? "/").split("?", 1)[0]} failed: ${message}`);
      if (!res.headersSent) sendJson(res, status, { error: message });
      else res.destroy();
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  const listening = await listen(server, o.host, o.port);
  return { ...listening, url: `${listening.url}/` };
}

function securityHeaders(res: ServerResponse): void {
  res.setHeader("Content-Security-Policy", CSP);
  res.setHeader("X-Content-Type-Options", "nosniff");
  res.setHeader("Referrer-Policy", "no-referrer");
  res.setHeader("X-Frame-Options", "DENY");
  res.setHeader("Cache-Control", "no-store");
}

/** Status and message of a failure; a message never quotes a request header. */
function describe(err: unknown): { status: number; message: string } {
  if (err instanceof HttpError) return { status: err.status, message: err.message };
  if (err instanceof UsageError || err instanceof ConfigError) return { status: 400, message: errorMessage(err) };
  if (err instanceof NotFoundError) return { status: 404, message: errorMessage(err) };
  if (err instanceof IntegrityError || err instanceof StoreError) return { status: 502, message: errorMessage(err) };
  return { status: 500, message: "internal error" };
}

function credentialCheck(auth: Auth | undefined): (req: IncomingMessage) => boolean {
  if (auth === undefined) return () => true;
  if (auth.kind === "token") {
    const digest = sha256(auth.token);
    return (req) => tokenMatches(req, digest);
  }
  const digest = sha256(`${auth.user}:${auth.password}`);
  return (req) => {
    const m = /^Basic +([A-Za-z0-9+/=]+) *$/i.exec(req.headers.authorization ?? "");
    if (!m?.[1]) return false;
    // Digests of equal size: neither the content nor the length shows in the timing.
    return timingSafeEqual(sha256(Buffer.from(m[1], "base64").toString("utf8")), digest);
  };
}

async function handle(o: ServeServerOptions, metrics: FleetMetrics, authorized: (req: IncomingMessage) => boolean, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? "/", "http://localhost");
  if (url.pathname === "/healthz") return sendText(res, 200, "ok\n");
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.setHeader("Allow", "GET, HEAD");
    throw new HttpError(405, "method not allowed");
  }
  if (!authorized(req)) {
    res.setHeader("WWW-Authenticate", o.auth?.kind === "basic" ? 'Basic realm="vaultik", charset="UTF-8"' : "Bearer");
    throw new HttpError(401, "authentication required");
  }
  // The raw path, not url.pathname: URL resolves `..` away, and a request that says `..` is
  // malformed, not a request for the parent.
  const seg = pathSegments((req.url ?? "/").split("?", 1)[0]!);
  if (seg === undefined) throw new UsageError("path", "is not valid percent-encoding");
  if (seg.some((s) => s === "." || s === "..")) throw new UsageError("path", "must not hold . or .. segments");
  if (url.pathname === "/metrics") {
    const body = await metrics.text();
    res.writeHead(200, { "Content-Type": metrics.contentType });
    res.end(body);
    return;
  }
  if (url.pathname === "/" || url.pathname === "/index.html") return sendStatic(res, join(o.webDir ?? DEFAULT_WEB_DIR, "index.html"), "no-cache");
  if (seg[0] === "assets" && seg.length === 2) return sendStatic(res, join(o.webDir ?? DEFAULT_WEB_DIR, "assets", assetParam(seg[1]!)), "no-cache");
  if (seg[0] !== "api") throw new HttpError(404, "not found");
  return api(o, seg.slice(1), url.searchParams, req, res);
}

async function api(o: ServeServerOptions, seg: string[], q: URLSearchParams, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { fleet } = o;
  if (seg.length === 1 && seg[0] === "overview") return sendJson(res, 200, fleet.overview());
  if (seg[0] !== "repos" || seg.length < 4) throw new HttpError(404, "not found");
  const slug = repoParam(seg[1]!);
  const spec = fleet.repo(slug);
  if (spec === undefined) throw new HttpError(404, `no repository ${slug}`);
  if (seg[2] === "hosts" && seg.length === 4) {
    const host = fleet.host(slug, hostParam(seg[3]!));
    if (host === undefined) throw new HttpError(404, `no host ${seg[3]} in ${slug}`);
    return sendJson(res, 200, host);
  }
  if (seg[2] !== "snapshots" || seg.length > 5) throw new HttpError(404, "not found");
  const found = fleet.snapshot(slug, idParam(seg[3]!));
  if (found === undefined) throw new HttpError(404, `no snapshot ${seg[3]} in ${slug}`);
  const action = seg[4];
  if (action === undefined) {
    const s = found.snapshot;
    return sendJson(res, 200, { repo: slug, host: s.host, ...found.view, previous: found.previous?.id ?? null, next: found.next?.id ?? null });
  }
  // A client that goes away stops the work it asked for (a tar of a whole snapshot).
  const abort = new AbortController();
  res.once("close", () => abort.abort());
  const b: browse.Browse = { repo: spec.repo, identities: o.identities, cache: o.cache, signal: abort.signal };
  const path = pathParam(q.get("path"));
  switch (action) {
    case "ls":
      return sendJson(res, 200, await browse.ls(b, found.snapshot, path));
    case "find":
      return sendJson(res, 200, await browse.find(b, found.snapshot, patternParam(q.get("q")), path));
    case "diff": {
      const against = q.get("against");
      const from = against === null ? found.previous : fleet.snapshot(slug, idParam(against, "against"))?.snapshot;
      if (from === undefined && against !== null) throw new HttpError(404, `no snapshot ${against} in ${slug}`);
      if (from === undefined) return sendJson(res, 200, { from: null, to: found.snapshot.id, changes: [], truncated: false, summary: null });
      return sendJson(res, 200, await browse.diff(b, from, found.snapshot, path));
    }
    case "file":
      if (req.method === "HEAD") throw new HttpError(405, "method not allowed");
      return browse.file(b, found.snapshot, path, res);
    case "tar":
      if (req.method === "HEAD") throw new HttpError(405, "method not allowed");
      return browse.tar(b, found.snapshot, path, res);
    default:
      throw new HttpError(404, "not found");
  }
}

async function sendStatic(res: ServerResponse, file: string, cache: string): Promise<void> {
  const info = await stat(file).catch(() => undefined);
  if (info === undefined || !info.isFile()) throw new HttpError(404, "not found");
  res.writeHead(200, { "Content-Type": TYPES[extname(file)] ?? "application/octet-stream", "Content-Length": String(info.size), "Cache-Control": cache });
  await new Promise<void>((resolve, reject) => {
    createReadStream(file).once("error", reject).pipe(res).once("finish", resolve).once("close", resolve);
  });
}

function sendJson(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { "Content-Type": "application/json; charset=utf-8" });
  res.end(`${JSON.stringify(body)}\n`);
}

function sendText(res: ServerResponse, code: number, body: string): void {
  res.writeHead(code, { "Content-Type": "text/plain; charset=utf-8" });
  res.end(body);
}
