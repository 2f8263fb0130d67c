import { describe, expect, it } from "vitest";
import { IntegrityError, NotFoundError, StoreError } from "../src/errors.js";
import { codeOf, diskFailure, isMissingObject, messageOf, notFound, remoteFailure } from "../src/store/errors.js";

// How the drivers turn what the OS or the S3 SDK threw into the store's errors, in one module
// shared by fs.ts and s3.ts (issue 13 item 6). The S3 cases use errors shaped like the SDK's, so
// they run without a server.

const sdkError = (name: string, status: number, message = ""): Error =>
  Object.assign(new Error(message), { name, $metadata: { httpStatusCode: status } });

describe("store error mapping", () => {
  it("reads codes and messages of whatever was thrown", () => {
    expect(codeOf(Object.assign(new Error("x"), { code: "ENOSPC" }))).toBe("ENOSPC");
    expect(codeOf({ code: 28 })).toBeUndefined();
    expect(codeOf(null)).toBeUndefined();
    expect(messageOf("plain")).toBe("plain");
    // Node's happy-eyeballs connect gives an AggregateError without a message of its own.
    expect(messageOf(new AggregateError([new Error("connect ECONNREFUSED ::1:9"), new Error("connect ECONNREFUSED 127.0.0.1:9")]))).toBe(
      "connect ECONNREFUSED ::1:9; connect ECONNREFUSED 127.0.0.1:9",
    );
  });

  it("says a full disk plainly, names the path, and keeps the cause", () => {
    const cause = Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
    const err = diskFailure({ location: "/repo", key: "blobs/ab" }, "write", "/repo/blobs/ab", cause);
    expect(err).toBeInstanceOf(StoreError);
    expect(err.message).toMatch(
      /^\/repo blobs\/ab: cannot write \/repo\/blobs\/ab: the disk holding the repository is full \(ENOSPC\); nothing was stored under this name\. Free space there and run the backup again$/,
    );
    expect(err.cause).toBe(cause);
    const other = diskFailure({ location: "/repo", key: "x" }, "stat", "/repo/x", Object.assign(new Error("EIO: i/o error"), { code: "EIO" }));
    expect(other.message).toMatch(/cannot stat \/repo\/x: EIO: i\/o error$/);
  });

  it("reports an abort as the abort and passes the store's own errors through", () => {
    const abort = new AbortController();
    abort.abort(new Error("stopped"));
    expect(diskFailure({ location: "/r", key: "k", signal: abort.signal }, "write", "/r/k", new Error("EPIPE"))).toBe(abort.signal.reason);
    const own = new IntegrityError("blob x", "bad");
    expect(remoteFailure({ location: "s3://b", key: "k", endpoint: "http://h", secrets: [] }, "get", own)).toBe(own);
  });

  it("names an unreachable endpoint, an HTTP failure by status, and never a secret", () => {
    const ctx = { location: "s3://bucket/p", key: "blobs/ab", endpoint: "http://127.0.0.1:9", secrets: ["SECRETKEY123"] };
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:9"), { code: "ECONNREFUSED" });
    expect(remoteFailure(ctx, "put", refused).message).toBe("s3://bucket/p blobs/ab: cannot reach http://127.0.0.1:9: connect ECONNREFUSED 127.0.0.1:9");
    const denied = sdkError("AccessDenied", 403, "key SECRETKEY123 may not write");
    const err = remoteFailure(ctx, "put", denied);
    expect(err).toBeInstanceOf(StoreError);
    expect(err.message).toBe("s3://bucket/p blobs/ab: put failed: AccessDenied (HTTP 403): key *** may not write");
  });

  it("tells a missing key from a missing bucket", () => {
    expect(isMissingObject(sdkError("NotFound", 404))).toBe(true);
    expect(isMissingObject(Object.assign(new Error("no such key"), { name: "NoSuchKey" }))).toBe(true);
    expect(isMissingObject(sdkError("NoSuchBucket", 404))).toBe(false);
    const e = notFound("s3://b", "index/x", "why");
    expect(e).toBeInstanceOf(NotFoundError);
    expect(e.message).toContain("s3://b index/x");
  });
});
