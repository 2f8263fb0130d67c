import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { parseConfig } from "../src/config/index.js";
import { encodeRecipient } from "../src/crypto/keys.js";
import { uniqueSlug } from "../src/cli/serve.js";

// Issue 18 item 1: the config's `serve:` section (stale_after, per-host stale_after) and the
// names repositories get in URLs.

const BASE = { age_recipient: encodeRecipient(Buffer.alloc(32, 1)), source_dirs: ["/data"], store: "/repo" };
const parse = (serve: unknown) => parseConfig(stringify({ ...BASE, serve }), { path: "/cfg/office.yml", env: {} });
const HOUR = 3600_000;

describe("config serve section", () => {
  it("reads stale_after and per-host stale_after; none of it when absent", () => {
    expect(parseConfig(stringify(BASE), { path: "/cfg/x.yml", env: {} }).serve).toBeUndefined();
    const c = parse({ stale_after: "2d", hosts: { laptop: { stale_after: "8d" }, "web-1.example.org": { stale_after: "90m" }, db: null } });
    expect(c.serve).toEqual({ staleAfter: 48 * HOUR, hosts: new Map([["laptop", 192 * HOUR], ["web-1.example.org", 1.5 * HOUR]]) });
    expect(parse({ hosts: { a: {} } }).serve).toEqual({ staleAfter: undefined, hosts: new Map() });
  });

  it.each([
    [{ stale_afer: "1d" }, /serve\.stale_afer: unknown key \(did you mean stale_after\?\)/],
    [{ stale_after: "soon" }, /serve\.stale_after: .*duration/],
    [{ stale_after: "0s" }, /serve\.stale_after: must be longer than 0/],
    [{ hosts: ["laptop"] }, /serve\.hosts: expected a mapping of host names, got a list/],
    [{ hosts: { "bad host": { stale_after: "1d" } } }, /serve\.hosts\.bad host: is not a host name/],
    [{ hosts: { laptop: { stale: "1d" } } }, /serve\.hosts\.laptop\.stale: unknown key/],
    [{ hosts: { laptop: "1d" } }, /serve\.hosts\.laptop: expected a mapping/],
  ])("refuses %j", (serve, message) => {
    expect(() => parse(serve)).toThrow(message);
  });
});

describe("repository names in URLs", () => {
  it("are slugs, unique", () => {
    const taken = new Set<string>();
    expect(["Office", "office", "my bucket-hosts/Web", "..x", "", "a".repeat(80)].map((n) => uniqueSlug(n, taken))).toEqual([
      "office", "office-2", "my-bucket-hosts-web", "x", "repo", "a".repeat(60),
    ]);
    for (const s of taken) expect(s).toMatch(/^[a-z0-9][a-z0-9._-]{0,63}$/);
  });
});
