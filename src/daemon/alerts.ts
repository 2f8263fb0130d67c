// Telling a human that backups stopped working (or started again). Delivery is best effort: an
// alert that cannot be sent is logged and dropped, because the daemon's job is backing up, and a
// dead webhook must never stop or slow the next run.

import type { AlertSeverity, AlertsConfig, AlertUrlChannel, EmailAlertConfig } from "../config/types.js";
import { errorMessage } from "../errors.js";
import { sendEmail } from "./alert-email.js";
import { atLeast, discordBody, ntfyHeaders, slackBody, webhookBody } from "./alert-format.js";
import { alertSeverity, type Alert } from "./alert-types.js";
import { Redactor, redactUrl } from "./redact.js";

export type { AlertSeverity } from "../config/types.js";
export { alertSeverity, type Alert } from "./alert-types.js";

type UrlOption = string | AlertUrlChannel;

export interface AlerterOptions {
  /** Receives a generic JSON POST (docs/ALERTS.md). */
  webhook?: UrlOption;
  /** ntfy topic URL, e.g. https://ntfy.sh/my-topic. */
  ntfy?: UrlOption;
  /** Slack incoming-webhook URL. */
  slack?: UrlOption;
  /** Discord channel webhook URL. */
  discord?: UrlOption;
  email?: EmailAlertConfig;
  /** For channels given as a plain URL. Default info: everything. */
  minSeverity?: AlertSeverity;
  /** Receives one line per delivery that failed. */
  log: (line: string) => void;
  /** For tests. Default the global fetch. */
  fetch?: typeof fetch;
  /** Per destination. Default 10 s. */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 10_000;

interface Channel {
  /** Names the channel in a log line; secret-free. */
  where: string;
  minSeverity: AlertSeverity;
  /** Masked in any error text (a lower layer may quote them back). */
  secrets: string[];
  deliver(alert: Alert, severity: AlertSeverity): Promise<void>;
}

export class Alerter {
  readonly #log: (line: string) => void;
  readonly #fetch: typeof fetch;
  readonly #timeoutMs: number;
  readonly #channels: Channel[] = [];

  constructor(o: AlerterOptions) {
    this.#log = o.log;
    this.#fetch = o.fetch ?? globalThis.fetch;
    this.#timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const min = o.minSeverity ?? "info";
    const json = { "Content-Type": "application/json" };
    this.#http("webhook", o.webhook, min, (a, s) => ({ headers: json, body: webhookBody(a, s) }));
    this.#http("ntfy", o.ntfy, min, (a) => ({ headers: ntfyHeaders(a), body: a.message }));
    this.#http("slack", o.slack, min, (a, s) => ({ headers: json, body: slackBody(a, s) }));
    this.#http("discord", o.discord, min, (a, s) => ({ headers: json, body: discordBody(a, s) }));
    const email = o.email;
    if (email !== undefined) {
      this.#channels.push({
        where: `email ${email.host}:${email.port}`,
        minSeverity: email.minSeverity,
        secrets: email.password === undefined ? [] : [email.password],
        deliver: (a, s) => sendEmail(email, a, s, this.#timeoutMs),
      });
    }
  }

  /** The daemon's or the serve command's alerter for a config's `alerts:`; undefined when it names no channel. */
  static fromConfig(alerts: AlertsConfig | undefined, log: (line: string) => void): Alerter | undefined {
    if (alerts === undefined) return undefined;
    const alerter = new Alerter({ ...alerts, log });
    return alerter.#channels.length === 0 ? undefined : alerter;
  }

  /** Tries every channel whose min_severity the alert meets, each on its own; resolves when all have finished. Never rejects. */
  async send(alert: Alert): Promise<void> {
    const severity = alertSeverity(alert);
    const due = this.#channels.filter((c) => atLeast(severity, c.minSeverity));
    await Promise.all(due.map((c) => this.#attempt(c, alert, severity)));
  }

  async #attempt(c: Channel, alert: Alert, severity: AlertSeverity): Promise<void> {
    try {
      await c.deliver(alert, severity);
    } catch (err) {
      this.#log(new Redactor(c.secrets).redact(`alert (${alert.kind}) to ${c.where} failed: ${this.#describe(err)}`));
    }
  }

  #http(name: string, option: UrlOption | undefined, min: AlertSeverity, build: (a: Alert, s: AlertSeverity) => { headers: Record<string, string>; body: string }): void {
    if (option === undefined) return;
    const { url, minSeverity } = typeof option === "string" ? { url: option, minSeverity: min } : option;
    this.#channels.push({
      where: `${name} ${redactUrl(url)}`,
      minSeverity,
      // Whatever the URL carries (password, query tokens, a Slack or Discord token in the path).
      secrets: urlSecrets(url),
      deliver: (a, s) => {
        const { headers, body } = build(a, s);
        return this.#post(url, headers, body);
      },
    });
  }

  async #post(url: string, headers: Record<string, string>, body: string): Promise<void> {
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
  }

  #describe(err: unknown): string {
    if (err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError")) {
      return `timed out after ${this.#timeoutMs} ms`;
    }
    // fetch reports every network problem as "fetch failed" and puts the useful part (such as
    // "connect ECONNREFUSED 10.0.0.1:443") in the cause.
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause : undefined;
    const text = cause?.message ?? errorMessage(err);
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

/** The parts of a URL that may be credentials: userinfo, every query value, and the path's segments after the first. */
function urlSecrets(url: string): string[] {
  try {
    const u = new URL(url);
    // Slack (/services/T…/B…/TOKEN) and Discord (/api/webhooks/ID/TOKEN) put the token in the path.
    const path = u.pathname.split("/").filter((seg) => seg.length > 0).slice(1);
    return [u.username, u.password, safeDecode(u.password), ...u.searchParams.values(), ...path];
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
