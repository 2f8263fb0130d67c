import type { AlertSeverity } from "../config/types.js";
import { formatBytes, formatDuration } from "../util/units.js";
import type { Alert } from "./alert-types.js";

// What each channel receives, built from one alert: a title, the message, and the same facts
// (host, app, severity, the run's figures) laid out as each service documents. Pure functions,
// so the shapes are checked without a network. The schema of the generic webhook is
// docs/ALERTS.md; change it only together with WEBHOOK_SCHEMA.

/** Version of the generic webhook's JSON; bumped only when a field changes meaning or goes away. */
export const WEBHOOK_SCHEMA = 1;

const SEVERITY_RANK: Record<AlertSeverity, number> = { info: 0, warning: 1, error: 2 };

export function atLeast(severity: AlertSeverity, min: AlertSeverity): boolean {
  return SEVERITY_RANK[severity] >= SEVERITY_RANK[min];
}

/** One line naming what happened and where: the email subject, the chat title. */
export function alertTitle(a: Alert): string {
  const one = a.app === undefined ? "backup" : `backup of ${a.app}`;
  const all = a.app === undefined ? "backups" : `backups of ${a.app}`;
  const what = {
    failure: `${one} failed`,
    stale: `no recent ${one}`,
    abandoned: `${one} run abandoned`,
    recovered: `${all} work again`,
  }[a.kind];
  return `vaultik: ${what} on ${a.host}`;
}

/** Label and value of each fact worth a line, in reading order. */
export function alertFacts(a: Alert, severity: AlertSeverity): [string, string][] {
  const facts: [string, string][] = [["Host", a.host]];
  if (a.app !== undefined) facts.push(["App", a.app]);
  facts.push(["Severity", severity], ["Time", a.time]);
  const r = a.run;
  if (r === undefined) return facts;
  facts.push(["Run", `#${r.seq} (${r.trigger})`], ["Started", r.started]);
  if (r.durationMs !== undefined) facts.push(["Duration", formatDuration(r.durationMs)]);
  if (r.snapshotId !== undefined) facts.push(["Snapshot", r.snapshotId]);
  facts.push(
    ["Files", `${r.filesNew} new, ${r.filesChanged} changed, ${r.filesUnchanged} unchanged`],
    ["Read", `${formatBytes(r.bytesRead)}; uploaded ${formatBytes(r.bytesUploaded)} in ${r.blobsUploaded} blobs`],
  );
  if (r.errors > 0) facts.push(["Unreadable paths", String(r.errors)]);
  if (r.error !== undefined) facts.push(["Error", r.error]);
  return facts;
}

/** The email body: the message, then one fact a line. */
export function emailText(a: Alert, severity: AlertSeverity): string {
  return `${a.message}\n\n${alertFacts(a, severity).map(([k, v]) => `${k}: ${v}`).join("\n")}\n`;
}

/** The generic webhook's body. The fields of schema 0 (source…run) keep their names and meaning. */
export function webhookBody(a: Alert, severity: AlertSeverity): string {
  return JSON.stringify({
    schema: WEBHOOK_SCHEMA,
    source: "vaultik",
    kind: a.kind,
    severity,
    title: alertTitle(a),
    message: a.message,
    host: a.host,
    app: a.app,
    time: a.time,
    run: a.run,
  });
}

export function ntfyHeaders(a: Alert): Record<string, string> {
  const ok = a.kind === "recovered";
  const title = `vaultik ${a.kind} on ${a.host}${a.app === undefined ? "" : ` (${a.app})`}`;
  return {
    "Content-Type": "text/plain; charset=utf-8",
    // Header values cannot hold line breaks; a host name never should, but a bad one must not
    // turn a delivery into a TypeError.
    Title: title.replace(/[\r\n]+/g, " "),
    Priority: ok ? "default" : "high",
    Tags: ok ? "white_check_mark" : "warning",
  };
}

// Slack's limits (Block Kit reference): header text 150, section text 3000, a section's fields
// at most 10 of 2000 each. The top-level `text` is the notification's fallback.
const SLACK = { header: 150, section: 3000, fields: 10, field: 2000 };

export function slackBody(a: Alert, severity: AlertSeverity): string {
  const title = alertTitle(a);
  return JSON.stringify({
    text: slackCut(`${title}: ${a.message}`, SLACK.section),
    blocks: [
      { type: "header", text: { type: "plain_text", text: cut(title, SLACK.header), emoji: true } },
      { type: "section", text: { type: "mrkdwn", text: slackCut(a.message, SLACK.section) } },
      {
        type: "section",
        fields: alertFacts(a, severity)
          .slice(0, SLACK.fields)
          .map(([k, v]) => ({ type: "mrkdwn", text: slackCut(`*${k}*\n${v}`, SLACK.field, k.length + 3) })),
      },
    ],
  });
}

// Discord's limits (message resource, embed limits): content 2000; per embed title 256,
// description 4096, 25 fields of name 256 and value 1024, footer 2048, all of them together 6000.
const DISCORD = { content: 2000, title: 256, description: 4096, field: 1024, total: 6000 };
const DISCORD_COLOUR: Record<AlertSeverity, number> = { error: 0xd93025, warning: 0xf29900, info: 0x188038 };

export function discordBody(a: Alert, severity: AlertSeverity): string {
  const title = cut(alertTitle(a), DISCORD.title);
  const fields = alertFacts(a, severity).map(([name, value]) => ({ name, value: cut(value, DISCORD.field), inline: name !== "Error" }));
  const footer = "vaultik";
  const used = length(title) + length(footer) + fields.reduce((n, f) => n + length(f.name) + length(f.value), 0);
  return JSON.stringify({
    content: cut(alertTitle(a), DISCORD.content),
    embeds: [
      {
        title,
        description: cut(a.message, Math.max(1, Math.min(DISCORD.description, DISCORD.total - used))),
        color: DISCORD_COLOUR[severity],
        timestamp: a.time,
        fields,
        footer: { text: footer },
      },
    ],
    // A message that quotes "@everyone" (from a hook's output, say) must not ping a channel.
    allowed_mentions: { parse: [] },
  });
}

/** Characters as the services count them: code points. */
function length(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

/** At most `max` code points; a cut text ends with "…" so a reader knows there was more. */
export function cut(text: string, max: number): string {
  if (length(text) <= max) return text;
  return `${[...text].slice(0, max - 1).join("")}…`;
}

/**
 * Slack mrkdwn: `& < >` must be escaped (Slack's formatting guide), and the cut must not split
 * an escape. `keep` leading characters (a field's bold label) are left unescaped.
 */
function slackCut(text: string, max: number, keep = 0): string {
  const escaped = text.slice(0, keep) + text.slice(keep).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  const short = cut(escaped, max);
  return short === escaped ? short : short.replace(/&[a-z]{0,3}…$/, "…");
}
