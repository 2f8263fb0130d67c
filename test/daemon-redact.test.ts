import { describe, expect, it } from "vitest";
import { Redactor, redactUrl } from "../src/daemon/redact.js";

// Expected outputs are written out by hand: each row is one kind of leak we have seen in other
// tools' logs (basic auth in a webhook URL, tokens in ntfy query strings, presigned S3 URLs).

describe("redactUrl", () => {
  it.each([
    ["https://hooks.example.com/notify", "https://hooks.example.com/notify"],
    ["https://user:pa55word@hooks.example.com/notify", "https://hooks.example.com/notify"],
    ["https://user@hooks.example.com/notify", "https://hooks.example.com/notify"],
    ["https://ntfy.sh/backups?auth=tk_abcdef123456", "https://ntfy.sh/backups"],
    ["http://user:s3cretpw@127.0.0.1:8080/hook?token=abcdef123#frag", "http://127.0.0.1:8080/hook"],
    ["http://[::1]:9812/status", "http://[::1]:9812/status"],
    ["https://example.com", "https://example.com/"],
    ["not a url, maybe a token abcdef", "<invalid URL>"],
    ["", "<invalid URL>"],
  ])("%s → %s", (input, expected) => {
    expect(redactUrl(input)).toBe(expected);
  });
});

describe("Redactor", () => {
  const r = new Redactor(["hunter2hunter2", undefined, "short", "AKIAEXAMPLEKEY", "p@ss w/rd!"]);

  it.each([
    // configured secrets, wherever they appear
    ["upload failed: bad key hunter2hunter2", "upload failed: bad key ***"],
    ["hunter2hunter2hunter2hunter2", "******"],
    ["access AKIAEXAMPLEKEY denied; retry with AKIAEXAMPLEKEY", "access *** denied; retry with ***"],
    // the percent-encoded spelling of a secret, as it appears inside a URL path
    ["GET /x/p%40ss%20w%2Frd! failed", "GET /x/*** failed"],
    // a secret shorter than 6 characters is left alone: masking it would garble ordinary text
    ["short answer", "short answer"],
    // userinfo in any URL, configured or not
    ["POST https://bob:letmein@hooks.example.com/x failed", "POST https://***@hooks.example.com/x failed"],
    ["url=s3://AKIA:SECRET@minio:9000", "url=s3://***@minio:9000"],
    ['webhook "https://bob:pa@ss@example.com" down', 'webhook "https://***@example.com" down'],
    ["mail bob@example.com about it", "mail bob@example.com about it"],
    // credential-like query parameters, any case, the rest of the URL intact
    ["https://ntfy.sh/t?auth=tk_123&x=1", "https://ntfy.sh/t?auth=***&x=1"],
    ["https://h/p?access_token=abc.def&page=2", "https://h/p?access_token=***&page=2"],
    ["https://h/p?page=2&API_KEY=zzz", "https://h/p?page=2&API_KEY=***"],
    ["https://h/p?apikey=zzz", "https://h/p?apikey=***"],
    ["https://h/p?client_secret=s&Password=p", "https://h/p?client_secret=***&Password=***"],
    [
      "GET https://b.s3.amazonaws.com/k?X-Amz-Credential=AKID%2F2024&X-Amz-Signature=f00d&X-Amz-Expires=60 403",
      "GET https://b.s3.amazonaws.com/k?X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Expires=60 403",
    ],
    ["https://acct.blob.core.windows.net/c?sv=2022&sig=abc%3D", "https://acct.blob.core.windows.net/c?sv=2022&sig=***"],
    ["https://h/p?token=abc#frag", "https://h/p?token=***#frag"],
    ["https://h/p?page=2&sort=asc", "https://h/p?page=2&sort=asc"],
    ["https://h/p?token=", "https://h/p?token="],
    // all at once
    [
      "alert to http://user:s3cretpw@127.0.0.1:1/hook?token=abcdef123 failed (hunter2hunter2)",
      "alert to http://***@127.0.0.1:1/hook?token=*** failed (***)",
    ],
    ["nothing to see here", "nothing to see here"],
  ])("%s → %s", (input, expected) => {
    expect(r.redact(input)).toBe(expected);
  });

  it("masks a secret added later, and the longer of two overlapping secrets whole", () => {
    const later = new Redactor([]);
    expect(later.redact("token abcdef-123456")).toBe("token abcdef-123456");
    later.add("abcdef");
    later.add("abcdef-123456");
    later.add(undefined);
    later.add("");
    expect(later.redact("token abcdef-123456 and abcdef")).toBe("token *** and ***");
  });

  it("treats secrets as literal text, not patterns", () => {
    const special = new Redactor(["a.b*c+d?", "$&$&$&"]);
    expect(special.redact("x a.b*c+d? axbbbcd y $&$&$& z")).toBe("x *** axbbbcd y *** z");
  });
});
