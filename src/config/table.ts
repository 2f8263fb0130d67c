import { envForm, envVariable } from "./env.js";
import { CONFIG_KEYS } from "./keys.js";
import type { ConfigKeyInfo } from "./types.js";

// README's Configuration table, generated from CONFIG_KEYS (`npm run gen:config-table`), so the
// documented keys, defaults and variables are the ones the parser accepts.

const BEGIN = "<!-- config-table:begin (generated from src/config/keys.ts by `npm run gen:config-table`; edit keys.ts, not this table) -->";
const END = "<!-- config-table:end -->";

export function configTable(): string {
  const rows = CONFIG_KEYS.map((k) => `| \`${k.key}\` | ${defaultCell(k)} | ${envCell(k)} | ${cell(k.description)} |`);
  return ["| key | default | environment | meaning |", "| --- | --- | --- | --- |", ...rows].join("\n");
}

/** `readme` with the text between the markers replaced by the current table. */
export function replaceConfigTable(readme: string): string {
  const start = readme.indexOf(BEGIN);
  const end = readme.indexOf(END);
  if (start < 0 || end < start) throw new Error(`README.md has no ${BEGIN} … ${END} block`);
  return `${readme.slice(0, start)}${BEGIN}\n${configTable()}\n${readme.slice(end)}`;
}

function defaultCell(k: ConfigKeyInfo): string {
  if (k.required) return "required";
  return k.default === undefined ? "" : `\`${cell(k.default)}\``;
}

const FORMATS = {
  string: "",
  list: " (comma-separated)",
  count: " (a whole number)",
  boolean: " (`true` or `false`)",
  channel: " (a URL, or flow text `{url: …, min_severity: …}`)",
} as const;

function envCell(k: ConfigKeyInfo): string {
  const variable = `\`${envVariable(k.key)}\``;
  const older = k.env && k.env !== envVariable(k.key) ? `, else \`${k.env}\`` : "";
  switch (envForm(k)) {
    case "inside":
      return `in ${variable}`;
    case "flow":
      return `${variable} (YAML/JSON flow text)`;
    case "section":
      return `\`${envVariable(k.key)}_…\` (one per key below)`;
    default:
      return `${variable}${FORMATS[k.kind ?? "string"]}${older}`;
  }
}

/** Text safe inside a Markdown table cell. */
function cell(text: string): string {
  return text.replaceAll("|", "\\|").replaceAll("\n", " ");
}
