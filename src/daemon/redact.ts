// Keeping secrets out of daemon logs. Every log line the daemon writes passes through a Redactor,
// and every URL the daemon names in a message passes through redactUrl. Both err on the side of
// masking too much: a log line with a stray `***` costs nothing, a leaked token costs a rotation.

/** Shorter secrets are not replaced: masking every "admin" or "1234" would garble ordinary text. */
const MIN_SECRET_LENGTH = 6;

const MASK = "***";

/**
 * A URL reduced to `protocol//host/path`: no userinfo, no query, no fragment, since webhook and
 * ntfy URLs often carry credentials in any of those. Text that is not a URL is not echoed back
 * (it could be a secret pasted into the wrong field).
 */
export function redactUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return "<invalid URL>";
  }
  return `${u.protocol}//${u.host}${u.pathname}`;
}

// `scheme://` followed by everything up to the last `@` of the authority. The authority ends at
// `/ ? #`, whitespace, or a quote or angle bracket around the URL in a message. Greedy, so a raw
// `@` inside a password still ends up masked.
const USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#"'<>]+@/gi;

// A query (or matrix) parameter whose name suggests a credential: access_token, api_key, apikey,
// X-Amz-Signature, X-Amz-Credential, client_secret, password, auth, and Azure SAS's bare `sig`.
// The value runs to the next separator, whitespace or closing quote.
const SECRET_PARAM =
  /([?&;](?:[^=&;\s#"'<>]*(?:token|key|secret|passw|signature|auth|credential)[^=&;\s#"'<>]*|sig)=)([^&;\s#"'<>]+)/gi;

export class Redactor {
  readonly #secrets = new Set<string>();
  /** Longest first, so a secret that contains another one is masked whole; rebuilt on add. */
  #ordered: string[] | undefined;

  constructor(secrets: Iterable<string | undefined> = []) {
    for (const s of secrets) this.add(s);
  }

  /** Also mask `secret` from now on. Absent, empty and short values are ignored. */
  add(secret?: string): void {
    if (secret === undefined || secret.length < MIN_SECRET_LENGTH) return;
    this.#secrets.add(secret);
    // A password inside a URL usually appears percent-encoded; mask that spelling too.
    const encoded = encodeURIComponent(secret);
    if (encoded !== secret) this.#secrets.add(encoded);
    this.#ordered = undefined;
  }

  redact(text: string): string {
    this.#ordered ??= [...this.#secrets].sort((a, b) => b.length - a.length);
    let out = text;
    // split/join rather than a RegExp: secrets are literal text and may hold any metacharacter.
    for (const s of this.#ordered) {
      if (out.includes(s)) out = out.split(s).join(MASK);
    }
    return out.replace(USERINFO, `$1${MASK}@`).replace(SECRET_PARAM, `$1${MASK}`);
  }
}
