import { ConfigError } from "../errors.js";
import { type Context, readTextFile, resolvePath } from "./context.js";
import { DEFAULTS } from "./keys.js";
import { readSecret } from "./secrets.js";
import type { AlertSeverity, AlertsConfig, AlertUrlChannel, EmailAlertConfig, SmtpSecurity } from "./types.js";
import { durationOr, optBool, optCount, optString, optUrl, nonEmptyString, reqString } from "./values.js";
import { closest, describe, keyOf, type Section, subsection, typeName, valueOf } from "./yaml.js";

// The `alerts:` section: where alerts go and how bad an alert must be to go there. Channel URLs
// and the SMTP password are secrets (webhook URLs embed tokens): errors name the key, never
// quote the value.

const SEVERITIES: readonly AlertSeverity[] = ["info", "warning", "error"];
const SECURITIES: readonly SmtpSecurity[] = ["starttls", "tls", "none"];

export function readAlerts(top: Section, ctx: Context): AlertsConfig | undefined {
  const s = subsection(top, "alerts");
  if (s === undefined) return undefined;
  const minSeverity = optChoice(s, "min_severity", SEVERITIES) ?? "info";
  return {
    webhook: readUrlChannel(s, "webhook", minSeverity),
    ntfy: readUrlChannel(s, "ntfy", minSeverity),
    slack: readUrlChannel(s, "slack", minSeverity),
    discord: readUrlChannel(s, "discord", minSeverity),
    email: readEmail(s, ctx, minSeverity),
    minSeverity,
    staleAfter: durationOr(s, "stale_after", DEFAULTS.staleAfter, 1),
    repeatAfter: durationOr(s, "repeat_after", DEFAULTS.alertRepeat, 1),
  };
}

/** The keys of a channel's mapping form (keys.ts explains why they are not rows of the key table). */
const CHANNEL_KEYS = ["url", "min_severity"];

/** A URL as before, or `{url, min_severity}`. */
function readUrlChannel(s: Section, key: string, fallback: AlertSeverity): AlertUrlChannel | undefined {
  const raw = valueOf(s, key);
  if (raw === undefined) return undefined;
  if (typeof raw === "string") return { url: optUrl(s, key, false)!, minSeverity: fallback };
  if (typeof raw !== "object" || Array.isArray(raw)) {
    throw new ConfigError(keyOf(s, key), `expected a URL or a mapping {url, min_severity}, got ${typeName(raw)}`);
  }
  const c: Section = { path: keyOf(s, key), schema: "", values: raw as Record<string, unknown> };
  for (const name of Object.keys(c.values)) {
    if (CHANNEL_KEYS.includes(name)) continue;
    const guess = closest(name, CHANNEL_KEYS);
    throw new ConfigError(keyOf(c, name), guess === undefined ? "unknown key (url and min_severity are)" : `unknown key (did you mean ${guess}?)`);
  }
  if (valueOf(c, "url") === undefined) throw new ConfigError(keyOf(c, "url"), "required");
  return { url: optUrl(c, "url", false)!, minSeverity: optChoice(c, "min_severity", SEVERITIES) ?? fallback };
}

function readEmail(s: Section, ctx: Context, fallback: AlertSeverity): EmailAlertConfig | undefined {
  const e = subsection(s, "email");
  if (e === undefined) return undefined;
  const host = reqString(e, "host");
  const port = optCount(e, "port");
  if (port !== undefined && (port < 1 || port > 65535)) throw new ConfigError(keyOf(e, "port"), `must be from 1 to 65535, got ${describe(port)}`);
  // Port 465 is implicit TLS by convention (RFC 8314); everything else starts plain and upgrades.
  const security = optChoice(e, "security", SECURITIES) ?? (port === 465 ? "tls" : "starttls");
  const user = optString(e, "user");
  const hasPassword = valueOf(e, "password") !== undefined || valueOf(e, "password_file") !== undefined;
  if (hasPassword && user === undefined) throw new ConfigError(keyOf(e, "user"), "required with password or password_file");
  // VAULTIK_ALERTS_EMAIL_PASSWORD(_FILE) reach here as keys (config/env.ts); the fallback
  // readSecret adds is the same variable, read only for a login.
  const password = user === undefined ? undefined : readSecret(e, "password", "VAULTIK_ALERTS_EMAIL_PASSWORD", ctx);
  if (user !== undefined && password === undefined) {
    throw new ConfigError(keyOf(e, "password"), "required with user: give password, password_file or VAULTIK_ALERTS_EMAIL_PASSWORD(_FILE)");
  }
  if (password !== undefined && security === "none") {
    throw new ConfigError(keyOf(e, "security"), "none would send the password in clear text: use starttls or tls");
  }
  const caFile = optString(e, "tls_ca_file");
  return {
    host,
    port: port ?? { tls: 465, starttls: 587, none: 25 }[security],
    security,
    user,
    password,
    from: address(reqString(e, "from"), keyOf(e, "from")),
    to: readRecipients(e),
    tlsCa: caFile === undefined ? undefined : readCa(resolvePath(caFile, ctx), keyOf(e, "tls_ca_file"), ctx),
    tlsInsecure: optBool(e, "tls_insecure") ?? false,
    minSeverity: optChoice(e, "min_severity", SEVERITIES) ?? fallback,
  };
}

function readRecipients(e: Section): string[] {
  const raw = valueOf(e, "to");
  const key = keyOf(e, "to");
  if (raw === undefined) throw new ConfigError(key, "required: an address or a list of them");
  if (typeof raw === "string") return [address(nonEmptyString(raw, key), key)];
  if (!Array.isArray(raw)) throw new ConfigError(key, `expected an address or a list of them, got ${typeName(raw)}`);
  if (raw.length === 0) throw new ConfigError(key, "must list at least one address");
  return raw.map((item, i) => address(nonEmptyString(item, `${key}[${i}]`), `${key}[${i}]`));
}

// `name@domain`, optionally as `Display Name <name@domain>`. Deliberately loose: the server is
// the judge of an address; this only catches a value that is plainly something else.
const ADDRESS = /^(?:[^<>]*<[^\s<>@]+@[^\s<>@]+>|[^\s<>@]+@[^\s<>@]+)$/;

function address(text: string, key: string): string {
  if (!ADDRESS.test(text)) throw new ConfigError(key, `expected an email address such as ops@example.com, got ${JSON.stringify(text)}`);
  return text;
}

function readCa(path: string, key: string, ctx: Context): string {
  const pem = readTextFile(ctx, path, key);
  if (!pem.includes("-----BEGIN CERTIFICATE-----")) throw new ConfigError(key, `${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  return pem;
}

function optChoice<T extends string>(s: Section, key: string, choices: readonly T[]): T | undefined {
  const text = optString(s, key);
  if (text === undefined) return undefined;
  if (!(choices as readonly string[]).includes(text)) throw new ConfigError(keyOf(s, key), `expected one of ${choices.join(", ")}, got ${JSON.stringify(text)}`);
  return text as T;
}

