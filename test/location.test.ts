import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ConfigError, UsageError } from "../src/errors.js";
import { locationFromArgs, parseStoreUrl } from "../src/store/location.js";
import { openLocation, openStore } from "../src/store/open.js";

// One parser for "where the repository is", whether a URL (openStore), the CLI's BUCKET [PREFIX]
// or a config file; one registry that opens the typed location (issue 13 item 4).

let dir: string;
let cwd: string;
beforeEach(async () => {
  cwd = process.cwd();
  dir = await mkdtemp(join(tmpdir(), "vaultik-location-"));
});
afterEach(async () => {
  process.chdir(cwd);
  await rm(dir, { recursive: true, force: true });
});

describe("parseStoreUrl", () => {
  it("reads paths, file: URLs and s3:// URLs into typed locations", () => {
    expect(parseStoreUrl("file:///srv/backup")).toEqual({ kind: "fs", path: "/srv/backup" });
    expect(parseStoreUrl("/srv/backup/")).toEqual({ kind: "fs", path: "/srv/backup" });
    expect(parseStoreUrl("relative/repo")).toEqual({ kind: "fs", path: join(process.cwd(), "relative/repo") });
    expect(parseStoreUrl("s3://bucket")).toEqual({ kind: "s3", bucket: "bucket", prefix: "" });
    expect(parseStoreUrl("s3://bucket/some/prefix/")).toEqual({ kind: "s3", bucket: "bucket", prefix: "some/prefix" });
  });

  it("refuses other schemes, a missing bucket and empty text as config errors", () => {
    for (const bad of ["ftp://host/x", "s3:///x", ""]) expect(() => parseStoreUrl(bad), bad).toThrow(ConfigError);
  });
});

describe("locationFromArgs (the CLI's BUCKET [PREFIX])", () => {
  it("a path, a dotted name, file:// or an existing directory is local; PREFIX is a subdirectory", async () => {
    await mkdir(join(dir, "repo", "sub"), { recursive: true });
    process.chdir(dir);
    expect(locationFromArgs("./repo", "")).toEqual({ kind: "fs", path: join(dir, "repo") });
    expect(locationFromArgs("repo", "")).toEqual({ kind: "fs", path: join(dir, "repo") });
    expect(locationFromArgs("repo", "/sub/")).toEqual({ kind: "fs", path: join(dir, "repo", "sub") });
    expect(locationFromArgs(`file://${dir}/repo`, "")).toEqual({ kind: "fs", path: join(dir, "repo") });
    expect(locationFromArgs(".hidden", "")).toEqual({ kind: "fs", path: join(dir, ".hidden") });
  });

  it("a bucket name or s3://NAME is a bucket, whatever exists locally; PREFIX loses its slashes", async () => {
    await mkdir(join(dir, "my-bucket"));
    process.chdir(dir);
    expect(locationFromArgs("s3://my-bucket/", "/a/b/")).toEqual({ kind: "s3", bucket: "my-bucket", prefix: "a/b" });
    expect(locationFromArgs("other-bucket", "")).toEqual({ kind: "s3", bucket: "other-bucket", prefix: "" });
  });

  it("a name that is neither: a usage error naming BUCKET", () => {
    process.chdir(dir);
    let err: unknown;
    try {
      locationFromArgs("Not_A_Bucket", "");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).argument).toBe("BUCKET");
    expect((err as UsageError).detail).toMatch(/^"Not_A_Bucket" is not an S3 bucket name, nor a local directory/);
  });
});

describe("openLocation", () => {
  it("opens each kind with its driver", () => {
    expect(openLocation({ kind: "fs", path: "/srv/backup" }).location).toBe("/srv/backup");
    expect(openLocation({ kind: "s3", bucket: "bucket", prefix: "p/q" }).location).toBe("s3://bucket/p/q");
    expect(openStore("s3://bucket/x/").location).toBe("s3://bucket/x");
  });
});
