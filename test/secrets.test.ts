import { describe, expect, it } from "vitest";
import { resolveSecret } from "../src/config/secrets.js";
import { ConfigError } from "../src/errors.js";

// One resolver for every credential: the value itself, a file named by a key, the environment
// variable, then `<VAR>_FILE` (issue 13 item 4). Config keys and the CLI's environment use it.

const files: Record<string, string> = { "/s/id": " from-file \n", "/s/empty": "\n" };
const readFile = (path: string): string => {
  const content = files[path];
  if (content === undefined) throw Object.assign(new Error(`ENOENT: open '${path}'`), { code: "ENOENT" });
  return content;
};

describe("resolveSecret", () => {
  it("takes the value, then the file key, then VAR, then VAR_FILE", () => {
    const env = { KEY: "from-env", KEY_FILE: "/s/id" };
    expect(resolveSecret({ value: "inline", envVar: "KEY" }, { env, readFile })).toBe("inline");
    expect(resolveSecret({ file: { path: "/s/id", key: "x_file" }, envVar: "KEY" }, { env, readFile })).toBe("from-file");
    expect(resolveSecret({ envVar: "KEY" }, { env, readFile })).toBe("from-env");
    expect(resolveSecret({ envVar: "KEY" }, { env: { KEY: " ", KEY_FILE: "/s/id" }, readFile })).toBe("from-file");
    expect(resolveSecret({ envVar: "KEY" }, { env: {}, readFile })).toBeUndefined();
  });

  it("names the key or variable of a file it cannot use", () => {
    expect(() => resolveSecret({ envVar: "KEY" }, { env: { KEY_FILE: "/nope" }, readFile })).toThrowError(
      expect.objectContaining({ constructor: ConfigError, key: "KEY_FILE", detail: "cannot read /nope: no such file" }),
    );
    expect(() => resolveSecret({ file: { path: "/s/empty", key: "s3.x_file" }, envVar: "KEY" }, { env: {}, readFile })).toThrowError(
      expect.objectContaining({ constructor: ConfigError, key: "s3.x_file", detail: "/s/empty is empty" }),
    );
  });
});
