// Validators of chat webhook bodies, written from the services' documentation (not from our
// code), so a payload that a service would answer with 400 fails a test here first. Each returns
// the list of problems; [] means the body fits.
//
// Slack incoming webhooks (api.slack.com/messaging/webhooks, Block Kit reference): `text` is the
// notification fallback; `blocks` at most 50; a header block's plain_text at most 150 characters;
// a section's text at most 3000, its `fields` at most 10 of at most 2000 each; a context block
// at most 10 elements; text objects are {type: "plain_text" | "mrkdwn", text}.
//
// Discord execute webhook (discord.com/developers/docs/resources/webhook#execute-webhook, embed
// limits in the message resource): `content` and/or `embeds` required; content at most 2000
// characters; at most 10 embeds; title 256, description 4096, at most 25 fields with name 256 and
// value 1024, footer text 2048, author name 256; all of those together at most 6000 per message;
// color an integer (0xRRGGBB); timestamp ISO8601.

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
/** Code points, as both services count characters. */
const len = (s: string) => [...s].length;

function textObject(v: unknown, where: string, max: number, types: string[], out: string[]): void {
  if (!isObject(v)) return void out.push(`${where}: not an object`);
  if (!types.includes(String(v["type"]))) out.push(`${where}.type: ${String(v["type"])} not one of ${types.join(", ")}`);
  if (typeof v["text"] !== "string" || v["text"] === "") return void out.push(`${where}.text: missing`);
  if (len(v["text"]) > max) out.push(`${where}.text: ${len(v["text"])} > ${max}`);
}

export function slackProblems(body: unknown): string[] {
  const out: string[] = [];
  if (!isObject(body)) return ["body: not an object"];
  if (typeof body["text"] !== "string" || body["text"] === "") out.push("text: missing (the notification fallback)");
  else if (len(body["text"]) > 40_000) out.push("text: over 40000");
  const blocks = body["blocks"];
  if (blocks === undefined) return out;
  if (!Array.isArray(blocks)) return [...out, "blocks: not a list"];
  if (blocks.length > 50) out.push(`blocks: ${blocks.length} > 50`);
  blocks.forEach((b: unknown, i) => {
    const at = `blocks[${i}]`;
    if (!isObject(b)) return void out.push(`${at}: not an object`);
    switch (b["type"]) {
      case "header":
        textObject(b["text"], `${at}.text`, 150, ["plain_text"], out);
        break;
      case "section": {
        if (b["text"] === undefined && b["fields"] === undefined) out.push(`${at}: needs text or fields`);
        if (b["text"] !== undefined) textObject(b["text"], `${at}.text`, 3000, ["plain_text", "mrkdwn"], out);
        const fields = b["fields"];
        if (fields !== undefined) {
          if (!Array.isArray(fields)) out.push(`${at}.fields: not a list`);
          else {
            if (fields.length > 10) out.push(`${at}.fields: ${fields.length} > 10`);
            fields.forEach((f: unknown, j) => textObject(f, `${at}.fields[${j}]`, 2000, ["plain_text", "mrkdwn"], out));
          }
        }
        break;
      }
      case "context": {
        const els = b["elements"];
        if (!Array.isArray(els) || els.length === 0) out.push(`${at}.elements: missing`);
        else {
          if (els.length > 10) out.push(`${at}.elements: ${els.length} > 10`);
          els.forEach((e: unknown, j) => textObject(e, `${at}.elements[${j}]`, 3000, ["plain_text", "mrkdwn"], out));
        }
        break;
      }
      case "divider":
        break;
      default:
        out.push(`${at}.type: ${String(b["type"])} is not a block this validator knows`);
    }
  });
  return out;
}

export function discordProblems(body: unknown): string[] {
  const out: string[] = [];
  if (!isObject(body)) return ["body: not an object"];
  const content = body["content"];
  const embeds = body["embeds"];
  if (content === undefined && embeds === undefined) out.push("content or embeds: one is required");
  if (content !== undefined) {
    if (typeof content !== "string") out.push("content: not a string");
    else if (len(content) > 2000) out.push(`content: ${len(content)} > 2000`);
  }
  if (embeds === undefined) return out;
  if (!Array.isArray(embeds)) return [...out, "embeds: not a list"];
  if (embeds.length > 10) out.push(`embeds: ${embeds.length} > 10`);
  let total = 0;
  const limited = (v: unknown, where: string, max: number) => {
    if (v === undefined) return;
    if (typeof v !== "string") return void out.push(`${where}: not a string`);
    if (len(v) > max) out.push(`${where}: ${len(v)} > ${max}`);
    total += len(v);
  };
  embeds.forEach((e: unknown, i) => {
    const at = `embeds[${i}]`;
    if (!isObject(e)) return void out.push(`${at}: not an object`);
    limited(e["title"], `${at}.title`, 256);
    limited(e["description"], `${at}.description`, 4096);
    const color = e["color"];
    if (color !== undefined && !(Number.isInteger(color) && (color as number) >= 0 && (color as number) <= 0xffffff)) out.push(`${at}.color: not an integer 0..0xFFFFFF`);
    const ts = e["timestamp"];
    if (ts !== undefined && (typeof ts !== "string" || Number.isNaN(Date.parse(ts)))) out.push(`${at}.timestamp: not ISO8601`);
    if (isObject(e["footer"])) limited(e["footer"]["text"], `${at}.footer.text`, 2048);
    if (isObject(e["author"])) limited(e["author"]["name"], `${at}.author.name`, 256);
    const fields = e["fields"];
    if (fields === undefined) return;
    if (!Array.isArray(fields)) return void out.push(`${at}.fields: not a list`);
    if (fields.length > 25) out.push(`${at}.fields: ${fields.length} > 25`);
    fields.forEach((f: unknown, j) => {
      if (!isObject(f)) return void out.push(`${at}.fields[${j}]: not an object`);
      if (typeof f["name"] !== "string" || f["name"] === "") out.push(`${at}.fields[${j}].name: missing`);
      if (typeof f["value"] !== "string" || f["value"] === "") out.push(`${at}.fields[${j}].value: missing`);
      limited(f["name"], `${at}.fields[${j}].name`, 256);
      limited(f["value"], `${at}.fields[${j}].value`, 1024);
      if (f["inline"] !== undefined && typeof f["inline"] !== "boolean") out.push(`${at}.fields[${j}].inline: not a boolean`);
    });
  });
  if (total > 6000) out.push(`embeds: ${total} characters in all > 6000`);
  return out;
}
