import { resolve } from "node:path";
import { parseRecipient, type X25519Recipient } from "../crypto/keys.js";
import { ConfigError } from "../errors.js";
import { type Context, readTextFile, resolvePath } from "./context.js";
import type { Config } from "./types.js";
import { eitherNotBoth, nonEmptyString, optString, stringItems } from "./values.js";
import { type Section, valueOf, wrongType } from "./yaml.js";

interface RecipientText {
  text: string;
  key: string;
}

export function readRecipients(top: Section, ctx: Context): Pick<Config, "recipients" | "recipientKeys"> {
  const unique = new Map<string, X25519Recipient>();
  for (const { text, key } of recipientTexts(top, ctx)) {
    const recipient = parseRecipient(text, key);
    unique.set(text.trim(), recipient);
  }
  return { recipients: [...unique.values()], recipientKeys: [...unique.keys()] };
}

/** Recipient texts with the key each came from: the key, its file, the environment, in order. */
function recipientTexts(top: Section, ctx: Context): RecipientText[] {
  const inline = valueOf(top, "age_recipient");
  const file = optString(top, "age_recipient_file");
  if (inline !== undefined && file !== undefined) throw eitherNotBoth("age_recipient", "age_recipient_file");
  if (inline !== undefined) return inlineRecipients(inline);
  if (file !== undefined) return recipientFile(readTextFile(ctx, resolvePath(file, ctx), "age_recipient_file"), "age_recipient_file");
  const fromEnv = ctx.env["VAULTIK_AGE_RECIPIENT"]?.trim();
  if (fromEnv) return fromEnv.split(/[\s,]+/).filter(Boolean).map((text) => ({ text, key: "VAULTIK_AGE_RECIPIENT" }));
  const envFile = ctx.env["VAULTIK_AGE_RECIPIENT_FILE"];
  if (envFile) return recipientFile(readTextFile(ctx, resolve(envFile), "VAULTIK_AGE_RECIPIENT_FILE"), "VAULTIK_AGE_RECIPIENT_FILE");
  throw new ConfigError(
    "age_recipient",
    "required: the age public key (age1…) backups are encrypted to; or set age_recipient_file or VAULTIK_AGE_RECIPIENT",
  );
}

function inlineRecipients(v: unknown): RecipientText[] {
  if (typeof v === "string") return [{ text: nonEmptyString(v, "age_recipient"), key: "age_recipient" }];
  if (!Array.isArray(v)) throw wrongType("age_recipient", "a string or a list of strings", v);
  if (v.length === 0) throw new ConfigError("age_recipient", "must list at least one recipient");
  return stringItems(v, "age_recipient").map((text, i) => ({ text, key: `age_recipient[${i}]` }));
}

/** One recipient per line; `#` comments and blank lines ignored, as in age's recipients files. */
function recipientFile(content: string, key: string): RecipientText[] {
  const lines = content.split(/\r?\n/).flatMap((line, i) => {
    const text = line.trim();
    return text === "" || text.startsWith("#") ? [] : [{ text, key: `${key} line ${i + 1}` }];
  });
  if (lines.length === 0) throw new ConfigError(key, "contains no age1… line");
  return lines;
}
