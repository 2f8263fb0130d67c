// Telling a human that backups stopped working (or started again). Delivery is best effort: an
// alert that cannot be sent is logged and dropped, because the daemon's job is backing up, and a
// dead webhook must never stop or slow the next run.

import { Redactor, redactUrl } from "./redact.js";
import type { RunRecord } from "./state.js";
import { errorMessage } from "../errors.js";

export interface Alert {
  kind: "failure" | "stale" | "abandoned" | "recovered";
  /** One line for a human; secret-free. */
  message: string;
  /** The machine whose backups this is about. */
  host: string;
  run?: RunRecord;
  /** ISO time of the event. */
  time: string;
  /** The app (of the config's apps:) the alert concerns; absent without apps. */
  app?: string;
}

export interface AlerterOptions {
  /** Receives a generic JSON POST. */
  webhook?: string;
  /** ntfy topic URL, e.g. https://ntfy.sh/my-topic. */
  ntfy?: string;
  /** Receives one line per delivery that failed. */
  log: (line: string) => void;
  /** For tests. Default the global fetch. */
  fetch?: typeof fetch;
  /** Per destination. Default 10 s. */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 10_000;

export class Alerter {
  readonly #o: AlerterOptions;
  readonly #fetch: typeof fetch;
  readonly #timeoutMs: number;

  constructor(options: AlerterOptions) {
    this.#o = options;
    this.#fetch = options.fetch ?? globalThis.fetch;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** Tries every configured destination, each on its own; resolves when all have finished. Never rejects. */
  async send(alert: Alert): Promise<void> {
    const attempts: Promise<void>[] = [];
    const { webhook, ntfy } = this.#o;
    if (webhook !== undefined) {
      const body = JSON.stringify({ source: "vaultik", kind: alert.kind, message: alert.message, host: alert.host, time: alert.time, run: alert.run });
      attempts.push(this.#post("webhook", webhook, alert, { "Content-Type": "application/json" }, body));
    }
    if (ntfy !== undefined) {
      const ok = alert.kind === "recovered";
      const headers = {
        "Content-Type": "text/plain; charset=utf-8",
        // Header values cannot hold line breaks; a host name never should, but a bad one must
        // not turn a delivery into a TypeError.
        Title: `vaultik ${alert.kind} on ${alert.host}`.replace(/[\r\n]+/g, " "),
        Priority: ok ? "default" : "high",
        Tags: ok ? "white_check_mark" : "warning",
      };
      attempts.push(this.#post("ntfy", ntfy, alert, headers, alert.message));
    }
    await Promise.all(attempts);
  }

  async #post(name: string, url: string, alert: Alert, headers: Record<string, string>, body: string): Promise<void> {
    const where = `${name} ${redactUrl(url)}`;
    // Whatever the URL carries (password, query tokens) is masked in any error text as well, in
    // case a lower layer quotes the URL back.
    const redactor = new Redactor(urlSecrets(url));
    try {
      const target = splitCredentials(url);
      const res = await this.#fetch(target.url, {
        method: "POST",
        headers: { ...headers, ...target.headers },
        body,
        signal: AbortSignal.timeout(this.#timeoutMs),
        // Following a 301/302 would turn the POST into a GET and report success for an alert
        // nobody received; failing makes the log say the URL needs fixing.
        redirect: "error",
      });
      // Release the connection; nobody reads what an alert endpoint answers.
      await res.body?.cancel().catch(() => {});
      if (!res.ok) throw new Error(`HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ""}`);
    } catch (err) {
      this.#o.log(redactor.redact(`alert (${alert.kind}) to ${where} failed: ${this.#describe(err)}`));
    }
  }

  #describe(err: unknown): string {
    if (err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError")) {
      return `timed out after ${this.#timeoutMs} ms`;
    }
    // fetch reports every network problem as "fetch failed" and puts the useful part (such as
    // "connect ECONNREFUSED 10.0.0.1:443") in the cause.
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause : undefined;
    const text = cause?.message ?? (errorMessage(err));
    return text.split("\n", 1)[0] ?? "";
  }
}

/**
 * fetch refuses URLs with `user:password@`, yet that is how people write a webhook behind basic
 * auth (ntfy accepts it too), so it is moved into an Authorization header.
 */
function splitCredentials(url: string): { url: string; headers: Record<string, string> } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    // Not echoed: the text may be a secret put in the wrong field.
    throw new Error("invalid URL");
  }
  if (u.username === "" && u.password === "") return { url, headers: {} };
  const user = safeDecode(u.username);
  const pass = safeDecode(u.password);
  u.username = "";
  u.password = "";
  return { url: u.href, headers: { Authorization: `Basic ${Buffer.from(`${user}:${pass}`, "utf8").toString("base64")}` } };
}

/** The parts of a URL that may be credentials: userinfo and every query value. */
function urlSecrets(url: string): string[] {
  try {
    const u = new URL(url);
    return [u.username, u.password, safeDecode(u.password), ...u.searchParams.values()];
  } catch {
    return [url];
  }
}

/** A stray `%` in a hand-written password is taken literally instead of failing the alert. */
function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
