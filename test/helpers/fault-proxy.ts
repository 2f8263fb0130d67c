import { createHash } from "node:crypto";
import { Agent, createServer, request as httpRequest } from "node:http";
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

// An HTTP proxy in front of s3rver that damages traffic the way networks and overloaded servers
// do (issue 14 item 9). Faults come from two places: rules a test injects (deterministic: "the
// first GET of this key is cut short") and, with a rate, a seeded pseudo-random choice. The
// random choice hashes the seed with the kind of request (method, key folder, query, ranged or
// not) and how many of that kind came before, so a run under the same seed meets the same
// faults, of the same kinds, on the same kinds of request (which of two concurrent requests of
// one kind gets one can vary), and a failing run repeats under the seed its message prints.

export type FaultKind =
  /** An S3 error answer, without forwarding. */
  | "503"
  | "500"
  /** TCP reset as soon as the request has arrived; nothing reaches the server. */
  | "reset"
  /** Forwarded; the answer's headers and half its body, then a TCP reset. No body: reset instead of the answer. */
  | "reset-mid-body"
  /** Forwarded; the answer's headers and half of its Content-Length, then a clean close. */
  | "truncate"
  /** Forwarded, answered after a short random delay. */
  | "delay"
  /** Forwarded; half the body sent as if it were all of it (Content-Length adjusted), as a broken proxy would. */
  | "malformed"
  /** Never answered; the client must give up on its own timeout. */
  | "stall";

/** The kinds a random fault is drawn from: those the report saw. */
export const RANDOM_KINDS: readonly FaultKind[] = ["503", "500", "reset", "reset-mid-body", "truncate", "delay"];

export interface ProxiedRequest {
  method: string;
  /** The object key inside the bucket (prefix included), decoded; "" for bucket-level calls (LIST). */
  key: string;
  query: URLSearchParams;
  range: string | undefined;
  ifMatch: string | undefined;
}

export interface FaultRule {
  match: (req: ProxiedRequest) => boolean;
  kind: FaultKind;
  /** How many matching requests get the fault; default 1. Infinity: every one. */
  times?: number;
  /** Runs after the request reached the server and before the answer is damaged, so a test can change the bucket in between. */
  before?: () => Promise<void>;
}

export interface LoggedRequest extends ProxiedRequest {
  fault: FaultKind | undefined;
}

export interface FaultProxyOptions {
  /** Fraction of requests given a random fault; 0 (the default) for rules only. */
  rate?: number;
  seed?: number;
  kinds?: readonly FaultKind[];
  /** Range of the "delay" fault, ms. Short: the test checks recovery, not patience. */
  delayMs?: readonly [number, number];
}

export interface FaultProxy {
  endpoint: string;
  seed: number;
  /** Every request, oldest first, with the fault it got. */
  readonly log: LoggedRequest[];
  inject(rule: FaultRule): void;
  /** Drops the rules not yet used up and sets the random rate. */
  reset(rate?: number): void;
  close(): Promise<void>;
}

export async function startFaultProxy(upstream: string, options: FaultProxyOptions = {}): Promise<FaultProxy> {
  const target = new URL(upstream);
  const seed = options.seed ?? 1;
  const kinds = options.kinds ?? RANDOM_KINDS;
  const [minDelay, maxDelay] = options.delayMs ?? [50, 200];
  let rate = options.rate ?? 0;
  let rules: (FaultRule & { left: number })[] = [];
  const seen = new Map<string, number>();
  const log: LoggedRequest[] = [];
  const sockets = new Set<Socket>();
  const agent = new Agent({ keepAlive: true });

  /** A deterministic draw in [0, 1) for the n-th sighting of a request. */
  function draw(signature: string, n: number, salt: string): number {
    return createHash("sha256").update(`${seed}|${signature}|${n}|${salt}`).digest().readUInt32BE(0) / 2 ** 32;
  }

  /** The fault for `req`, if any, and where in the delay range a "delay" falls (0 to 1). */
  function choose(req: ProxiedRequest): { kind: FaultKind | undefined; before?: () => Promise<void>; lag: number } {
    const rule = rules.find((r) => r.left > 0 && r.match(req));
    if (rule) {
      rule.left--;
      return { kind: rule.kind, before: rule.before, lag: 0.5 };
    }
    if (rate <= 0) return { kind: undefined, lag: 0 };
    const signature = signatureOf(req);
    const n = (seen.get(signature) ?? 0) + 1;
    seen.set(signature, n);
    if (draw(signature, n, "fault") >= rate) return { kind: undefined, lag: 0 };
    return { kind: kinds[Math.floor(draw(signature, n, "kind") * kinds.length)], lag: draw(signature, n, "lag") };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await collect(req);
    const url = new URL(req.url ?? "/", "http://proxy");
    // Path-style: /bucket/key…
    const [, , ...rest] = url.pathname.split("/");
    const proxied: ProxiedRequest = {
      method: req.method ?? "GET",
      key: decodeURIComponent(rest.join("/")),
      query: url.searchParams,
      range: header(req.headers, "range"),
      ifMatch: header(req.headers, "if-match"),
    };
    const { kind, before, lag } = choose(proxied);
    log.push({ ...proxied, fault: kind });
    const socket = req.socket;

    if (kind === "stall") return; // closed by the client's timeout, or by close()
    if (kind === "reset") return void socket.resetAndDestroy();
    if (kind === "503" || kind === "500") {
      const [code, message] = kind === "503" ? ["ServiceUnavailable", "Please reduce your request rate."] : ["InternalError", "We encountered an internal error."];
      const xml = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`;
      res.writeHead(Number(kind), { "content-type": "application/xml", "content-length": Buffer.byteLength(xml) });
      return void res.end(req.method === "HEAD" ? undefined : xml);
    }

    const answer = await forward(req, body);
    await before?.();
    if (kind === "delay") await sleep(minDelay + Math.floor(lag * (maxDelay - minDelay + 1)));
    const headers = { ...answer.headers };
    delete headers["transfer-encoding"];
    const hasBody = req.method !== "HEAD" && answer.body.byteLength > 0;
    if (req.method !== "HEAD") headers["content-length"] = String(answer.body.byteLength);
    const half = answer.body.subarray(0, Math.floor(answer.body.byteLength / 2));

    if (kind === "reset-mid-body" || kind === "truncate") {
      const cut = () => (kind === "truncate" ? socket.end() : socket.resetAndDestroy());
      if (!hasBody) return void cut(); // the server acted; its answer is lost
      res.writeHead(answer.status, headers);
      return void res.write(half, () => cut());
    }
    if (kind === "malformed" && hasBody) {
      headers["content-length"] = String(half.byteLength);
      res.writeHead(answer.status, headers);
      return void res.end(half);
    }
    res.writeHead(answer.status, headers);
    res.end(req.method === "HEAD" ? undefined : answer.body);
  }

  function forward(req: IncomingMessage, body: Buffer): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
    const headers = { ...req.headers };
    delete headers["expect"]; // the body is already here
    delete headers["connection"];
    return new Promise((resolve, reject) => {
      const up = httpRequest(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers, agent },
        (answer) => {
          collect(answer).then((bytes) => resolve({ status: answer.statusCode ?? 502, headers: answer.headers, body: bytes }), reject);
        },
      );
      up.once("error", reject);
      up.end(body);
    });
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => req.socket.destroy());
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("error", () => {}); // resets are the point
    socket.once("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    seed,
    log,
    inject(rule) {
      rules.push({ ...rule, left: rule.times ?? 1 });
    },
    reset(newRate = 0) {
      rules = [];
      rate = newRate;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      agent.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * What kind of request this is: method, the key's top folder (`blobs`, `index`…), the query's
 * parameter names and whether a range was asked. Not the key itself: blob names and snapshot ids
 * differ from run to run, and a seed must give the same faults to the same kinds of requests.
 */
function signatureOf(req: ProxiedRequest): string {
  const folder = req.key.split("/").find((part, i, parts) => i < parts.length - 1 && /^(blobs|index|runs|locks|notices)$/.test(part)) ?? "";
  return `${req.method} ${folder}?${[...req.query.keys()].sort().join("&")} ${req.range === undefined ? "" : "ranged"}`;
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

async function collect(stream: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part as Buffer);
  return Buffer.concat(parts);
}
