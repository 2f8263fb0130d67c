import { describe, expect, it } from "vitest";
import { links, parseRoute } from "../src/serve/web/assets/api.js";
import { ago, bytes, duration } from "../src/serve/web/assets/format.js";
import { light } from "../src/serve/web/assets/status.js";

// The page's DOM-free parts, in Node: what the browser test cannot pin down cheaply.

describe("serve page: routes", () => {
  it("a snapshot route keeps any path, tab and pattern through the hash", () => {
    const id = "20261123T105529Z_web-1_3f9a0c1d";
    for (const path of ["/", "/srv/a #1 & b/c?d=e", "/home/zoë/日本/%41", "/bad\\xff/x\\\\y", "/a+b/=;"]) {
      expect(parseRoute(links.snapshot("main", id, { path, tab: "find", q: "*.c?nf" }))).toEqual({ view: "snapshot", repo: "main", id, path, tab: "find", q: "*.c?nf" });
    }
    expect(parseRoute(links.snapshot("main", id))).toEqual({ view: "snapshot", repo: "main", id, path: "/", tab: "files", q: "" });
    expect(parseRoute(links.host("r-1.x", "db-1.example.org"))).toEqual({ view: "host", repo: "r-1.x", host: "db-1.example.org" });
    expect(parseRoute("")).toEqual({ view: "overview" });
    expect(parseRoute("#/")).toEqual({ view: "overview" });
    expect(parseRoute("#/nothing/here")).toEqual({ view: "missing", hash: "/nothing/here" });
    expect(parseRoute(`#/r/main/s/${id}?tab=evil`)).toMatchObject({ view: "snapshot", tab: "files" });
  });
});

describe("serve page: formatting", () => {
  it("sizes in binary units, one decimal below 10", () => {
    expect([0, 1023, 1536, 10 * 1024 - 1, 12.4 * 1024 ** 2, 5 * 1024 ** 3, 3 * 1024 ** 5].map(bytes)).toEqual(["0 B", "1023 B", "1.5 KiB", "10.0 KiB", "12 MiB", "5.0 GiB", "3.0 PiB"]);
    expect(bytes(null)).toBe("—");
  });

  it("durations in the largest readable unit", () => {
    expect([0, 59, 60, 90 * 60, 26 * 3600, 47 * 3600 + 59 * 60, 5 * 86400, 5 * 86400 + 7 * 3600].map(duration)).toEqual(["0 s", "59 s", "1 min", "1 h 30 min", "26 h", "47 h", "5 d", "5 d 7 h"]);
    expect(ago(10)).toBe("just now");
    expect(ago(3 * 3600)).toBe("3 h ago");
  });
});

describe("serve page: status light", () => {
  const STALE = 26 * 3600;
  it("green until 3/4 of stale_after, amber past it, red when the server says stale or error", () => {
    expect(light("ok", 0.75 * STALE, STALE).light).toBe("green");
    expect(light("ok", 0.75 * STALE + 1, STALE)).toEqual({ light: "amber", label: "ageing" });
    expect(light("stale", 2 * STALE, STALE)).toEqual({ light: "red", label: "stale" });
    expect(light("stale", null, STALE)).toEqual({ light: "red", label: "stale" });
    expect(light("error", 10, STALE)).toEqual({ light: "red", label: "error" });
  });
});
