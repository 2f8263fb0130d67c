import { describe, expect, it } from "vitest";
import { errorMessage, StoreError } from "../src/errors.js";

// One way to turn anything thrown into text (issue 13 item 7), instead of `(err as Error).message`
// casts that print "undefined" when a library throws a string or a plain object.

describe("errorMessage", () => {
  it("is the message of an Error, typed or not", () => {
    expect(errorMessage(new Error("boom"))).toBe("boom");
    expect(errorMessage(new StoreError("/repo", "blobs/x", "disk full"))).toBe("/repo blobs/x: disk full");
  });

  it("is readable text for anything else thrown", () => {
    expect(errorMessage("plain string")).toBe("plain string");
    expect(errorMessage(42)).toBe("42");
    expect(errorMessage(undefined)).toBe("undefined");
    expect(errorMessage({ message: "from an object" })).toBe("from an object");
  });
});
