// A dump tool's stderr can echo what it was given: a connection string, the password it tried.
// Every message that leaves a database source goes through this first.

const MASK = "***";

/** Replaces each secret, as written and as a URL would encode it, with ***. */
export function redactor(secrets: readonly (string | undefined)[]): (text: string) => string {
  const forms = [...new Set(secrets.flatMap((s) => (s === undefined || s === "" ? [] : [s, encodeURIComponent(s)])))]
    // Longest first, so a secret containing another is masked whole.
    .sort((a, b) => b.length - a.length);
  return (text) => forms.reduce((t, secret) => t.split(secret).join(MASK), text);
}
