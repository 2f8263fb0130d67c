import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { decodePath, displayPath, encodePath, fsPath, hasRawBytes, parseDisplayPath } from "../src/model/path-bytes.js";

describe("paths as bytes (issue 15)", () => {
  it("round-trips names that are not UTF-8 and keeps the U+FFFD collision pair apart", () => {
    const bad = Buffer.from([0x79, 0xff]);
    const replacement = Buffer.from("y\uFFFD", "utf8");
    const a = decodePath(bad);
    const b = decodePath(replacement);
    expect(a).not.toBe(b);
    expect(encodePath(a).equals(bad)).toBe(true);
    expect(encodePath(b).equals(replacement)).toBe(true);
    expect(hasRawBytes(a)).toBe(true);
    expect(hasRawBytes(b)).toBe(false);
    expect(fsPath(a)).toEqual(bad);
    expect(fsPath(b)).toBe("y\uFFFD");
  });

  it("round-trips every byte string, including overlongs, encoded surrogates and truncated sequences", () => {
    const cases = [
      [0xc0, 0xaf], [0xe0, 0x80, 0xaf], [0xed, 0xa0, 0x80], [0xed, 0xb2, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82],
      [0xf0, 0x9f, 0x98, 0x80, 0xff], [0xf0, 0x90, 0x82, 0x80, 0x80], [0x5c, 0x78, 0x66, 0x66],
    ].map((c) => Buffer.from(c));
    for (let i = 0; i < 2000; i++) cases.push(randomBytes(1 + (i % 12)));
    const seen = new Map<string, string>();
    for (const bytes of cases) {
      const s = decodePath(bytes);
      expect(encodePath(s).equals(bytes), bytes.toString("hex")).toBe(true);
      const other = seen.get(s);
      if (other !== undefined) expect(other).toBe(bytes.toString("hex"));
      seen.set(s, bytes.toString("hex"));
      expect(parseDisplayPath(displayPath(s)), bytes.toString("hex")).toBe(s);
    }
  });

  it("shows raw bytes, control characters and backslashes escaped, and plain names as they are", () => {
    expect(displayPath(decodePath(Buffer.from([0x62, 0x61, 0x64, 0xff, 0xfe])))).toBe("bad\\xff\\xfe");
    expect(displayPath("line\nbreak")).toBe("line\\x0abreak");
    expect(displayPath("a\\b")).toBe("a\\\\b");
    expect(displayPath("home/zoë/😀.txt")).toBe("home/zoë/😀.txt");
    expect(parseDisplayPath("bad\\xff")).toBe(decodePath(Buffer.from([0x62, 0x61, 0x64, 0xff])));
    expect(parseDisplayPath("keep\\q")).toBe("keep\\q");
  });
});
