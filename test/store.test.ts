import { createHash, randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer as createNetServer } from "node:net";
import type { AddressInfo } from "node:net";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { ConfigError, NotFoundError, StoreError } from "../src/errors.js";
import { getBytes, readAll } from "../src/store/bytes.js";
import { openFsStore } from "../src/store/fs.js";
import { openMemoryStore } from "../src/store/memory.js";
import { openStore } from "../src/store/open.js";
import { openS3Store } from "../src/store/s3.js";
import type { S3StoreOptions } from "../src/store/s3.js";
import type { ObjectInfo, Store } from "../src/store/store.js";
import { describeStoreContract, streamBody } from "./store-contract.js";
import { s3rverStoreOptions, startS3rver } from "./helpers/s3rver.js";
import type { S3rverHandle } from "./helpers/s3rver.js";

// Lets one run of the fs contract pretend the filesystem has no hard links (FAT, some FUSE and
// SMB mounts), to exercise the rename fallback. Every other test gets the real link(2).
const fsFaults = vi.hoisted(() => ({ noHardLinks: false, refusedLinks: 0 }));
vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  const link: typeof real.link = (existing, path) =>
    fsFaults.noHardLinks && ++fsFaults.refusedLinks
      ? Promise.reject(Object.assign(new Error(`EPERM: operation not permitted, link '${String(existing)}'`), { code: "EPERM" }))
      : real.link(existing, path);
  return { ...real, default: { ...real, link }, link };
});

const MiB = 1024 * 1024;
const SECRET = "SECRETsecretSECRET123";

async function keys(store: Store, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const info of store.list(prefix)) out.push(info.key);
  return out.sort();
}

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), "vaultik-store-"));
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest();

describeStoreContract("fs", async () => {
  const dir = await tempDir();
  return { store: openFsStore(dir), cleanup: () => rm(dir, { recursive: true, force: true }) };
});

describeStoreContract(
  "fs without hard links",
  async () => {
    const dir = await tempDir();
    fsFaults.noHardLinks = true;
    return {
      store: openFsStore(dir),
      async cleanup() {
        fsFaults.noHardLinks = false;
        await rm(dir, { recursive: true, force: true });
      },
    };
  },
  { exclusiveConcurrentPut: false },
);

describeStoreContract("memory", async () => ({ store: openMemoryStore(), cleanup: async () => {} }));

describe("fs store", () => {
  let dir: string;
  let store: Store;
  beforeAll(async () => {
    dir = await tempDir();
    store = openFsStore(dir);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("lays objects out as plain files under the root, readable with standard tools", async () => {
    const data = randomBytes(100);
    await store.put("blobs/aa/bb/plain", data);
    expect((await readFile(join(dir, "blobs", "aa", "bb", "plain"))).equals(data)).toBe(true);
    expect(store.location).toBe(dir);
  });

  it("leaves nothing in its temp directory after puts, refused puts and failed puts", async () => {
    await store.put("tmpcheck/a", randomBytes(10));
    await store.put("tmpcheck/b", streamBody(randomBytes(100_000)));
    await store.put("tmpcheck/a", randomBytes(10));
    await expect(store.put("tmpcheck/c", { size: 5, open: () => streamBody(randomBytes(3)).open() })).rejects.toBeInstanceOf(StoreError);
    expect(await readdir(join(dir, ".tmp"))).toEqual([]);
  });

  it("hides its temp directory from list and refuses keys inside it", async () => {
    await mkdir(join(dir, ".tmp"), { recursive: true });
    await writeFile(join(dir, ".tmp", "orphan"), "left by a crash");
    expect((await keys(store)).some((key) => key.startsWith(".tmp"))).toBe(false);
    expect(await keys(store, ".tmp/")).toEqual([]);
    await expect(store.put(".tmp/x", randomBytes(1))).rejects.toBeInstanceOf(StoreError);
    await expect(store.get(".tmp/orphan")).rejects.toBeInstanceOf(StoreError);
  });

  it("returns the truncated bytes of a blob truncated on disk: integrity is the layer above's job", async () => {
    const data = randomBytes(1000);
    await store.put("blobs/trunc", data);
    await truncate(join(dir, "blobs", "trunc"), 600);
    expect((await getBytes(store, "blobs/trunc")).equals(data.subarray(0, 600))).toBe(true);
    const tail = await getBytes(store, "blobs/trunc", { range: { offset: 500, length: 200 } });
    expect(tail.equals(data.subarray(500, 600))).toBe(true);
    expect((await store.stat("blobs/trunc")).size).toBe(600);
  });

  it("names the directory and key when something is not found", async () => {
    await expect(store.get("blobs/nope")).rejects.toThrow(`${dir} blobs/nope: not found`);
  });

  it("treats a directory as no object", async () => {
    await store.put("dirs/inner/x", randomBytes(1));
    await expect(store.get("dirs/inner")).rejects.toBeInstanceOf(NotFoundError);
    await expect(store.stat("dirs/inner")).rejects.toBeInstanceOf(NotFoundError);
  });

  it("refuses a key whose path is a directory of other keys instead of calling it stored", async () => {
    await store.put("nested/key/below", randomBytes(1));
    await expect(store.put("nested/key", randomBytes(1))).rejects.toBeInstanceOf(StoreError);
    await expect(store.put("nested/key/below/deeper", randomBytes(1))).rejects.toBeInstanceOf(StoreError);
  });

  it("falls back to rename where link(2) is refused, still without overwriting", async () => {
    const root = await tempDir();
    const own = openFsStore(root);
    const first = randomBytes(10);
    fsFaults.noHardLinks = true;
    const before = fsFaults.refusedLinks;
    try {
      expect(await own.put("blobs/a", first)).toBe(true);
      expect(await own.put("blobs/a", randomBytes(10))).toBe(false);
      expect(await own.put("blobs/b", streamBody(randomBytes(10)))).toBe(true);
    } finally {
      fsFaults.noHardLinks = false;
    }
    expect(fsFaults.refusedLinks - before).toBe(1); // tried once, then remembered
    expect((await getBytes(own, "blobs/a")).equals(first)).toBe(true);
    expect(await readdir(join(root, ".tmp"))).toEqual([]);
    await rm(root, { recursive: true, force: true });
  });

  it("prunes directories a delete leaves empty, but never the root", async () => {
    const root = await tempDir();
    const own = openFsStore(root);
    await own.put("blobs/aa/bb/one", randomBytes(1));
    await own.put("blobs/aa/cc/two", randomBytes(1));
    await own.delete("blobs/aa/bb/one");
    expect(await readdir(join(root, "blobs", "aa"))).toEqual(["cc"]);
    await own.delete("blobs/aa/cc/two");
    expect(await readdir(root)).toEqual([".tmp"]);
    await rm(root, { recursive: true, force: true });
  });

  it("creates a missing root on first put and lists nothing before", async () => {
    const parent = await tempDir();
    const root = join(parent, "not", "yet");
    const own = openFsStore(root);
    expect(await keys(own)).toEqual([]);
    expect(await own.put("config", randomBytes(3))).toBe(true);
    expect((await stat(join(root, "config"))).size).toBe(3);
    await rm(parent, { recursive: true, force: true });
  });

  it("reports a write it cannot do as a StoreError naming the path", async () => {
    const parent = await tempDir();
    const blocker = join(parent, "file");
    await writeFile(blocker, "not a directory");
    const own = openFsStore(blocker); // the root is a file: every write must fail
    const err = await own.put("blobs/x", randomBytes(1)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect((err as Error).message).toContain(blocker);
    expect((err as Error).cause).toBeDefined();
    await rm(parent, { recursive: true, force: true });
  });
});

describe("S3 store on s3rver", () => {
  let server: S3rverHandle;
  let n = 0;
  const fresh = (extra: Partial<S3StoreOptions> = {}) =>
    openS3Store({ ...s3rverStoreOptions(server, `t${++n}-${randomBytes(4).toString("hex")}`), ...extra });

  beforeAll(async () => {
    server = await startS3rver();
  });
  afterAll(async () => {
    await server?.close();
  });

  // Two attempts, not ten: s3rver answers a range of an empty object with headers and then
  // silence until it drops the connection, about 6 s later, on every attempt.
  describeStoreContract("s3 (s3rver)", async () => ({ store: fresh({ maxAttempts: 2 }), cleanup: async () => {} }), {
    rangeOnEmptyObject: false,
    exclusiveConcurrentPut: false,
  });

  it("round-trips a body above multipartThreshold through a multipart upload, checksum on every part", async () => {
    const store = fresh({ multipartThreshold: 5 * MiB, partSize: 5 * MiB });
    const data = randomBytes(12 * MiB + 7);
    const parts = [0, 1, 2].map((i) => sha256(data.subarray(i * 5 * MiB, (i + 1) * 5 * MiB)).toString("base64"));
    for (const [key, body] of [
      ["blobs/multi-bytes", new Uint8Array(data)],
      ["blobs/multi-stream", streamBody(data)],
    ] as const) {
      const before = server.requests.length;
      expect(await store.put(key, body)).toBe(true);
      expect((await getBytes(store, key)).equals(data)).toBe(true);
      const sent = server.requests.slice(before);
      expect(sent.filter((r) => r.method === "POST" && r.url.includes("?uploads"))).toHaveLength(1);
      const uploads = sent.filter((r) => r.method === "PUT" && r.url.includes("partNumber="));
      expect(uploads.map((r) => r.headers["x-amz-checksum-sha256"])).toEqual(parts);
      expect(await store.put(key, body)).toBe(false);
    }
  });

  it("sends x-amz-checksum-sha256 with every single-part upload, as a plain (not aws-chunked) body", async () => {
    const store = fresh();
    const data = randomBytes(3 * MiB);
    const want = sha256(data).toString("base64");
    const bodies = {
      "c/bytes": () => store.put("c/bytes", data),
      "c/stream": () => store.put("c/stream", streamBody(data)),
      "c/given": () => store.put("c/given", streamBody(data), { sha256: sha256(data) }),
    };
    for (const [key, put] of Object.entries(bodies)) {
      const before = server.requests.length;
      expect(await put()).toBe(true);
      const [request] = server.requests.slice(before).filter((r) => r.method === "PUT");
      expect(request?.url).toContain(key);
      expect(request?.headers["x-amz-checksum-sha256"]).toBe(want);
      expect(request?.headers["if-none-match"]).toBe("*");
      expect(request?.headers["content-encoding"]).toBeUndefined();
      expect((await getBytes(store, key)).equals(data)).toBe(true);
    }
    // s3rver neither checks x-amz-checksum-sha256 nor honours If-None-Match on PUT, so a wrong
    // checksum and a racing overwrite cannot be shown to fail here; see the fake-server tests.
  });

  it("normalises the prefix and lists only its own keys, relative to it", async () => {
    const a = randomBytes(5);
    const b = randomBytes(6);
    const tenant = openS3Store(s3rverStoreOptions(server, "tenant"));
    expect(tenant.location).toBe(`s3://${server.bucket}/tenant`);
    await tenant.put("blobs/k", a);
    for (const prefix of ["tenant/", "/tenant/"]) {
      const same = openS3Store(s3rverStoreOptions(server, prefix));
      expect(same.location).toBe(tenant.location);
      expect(await keys(same)).toEqual(["blobs/k"]);
    }
    const other = openS3Store(s3rverStoreOptions(server, "tenant2"));
    expect(await other.put("blobs/k", b)).toBe(true);
    expect(await keys(tenant)).toEqual(["blobs/k"]);
    expect((await getBytes(tenant, "blobs/k")).equals(a)).toBe(true);
    expect((await getBytes(other, "blobs/k")).equals(b)).toBe(true);
    const root = openS3Store(s3rverStoreOptions(server, ""));
    expect(root.location).toBe(`s3://${server.bucket}`);
    expect(await keys(root, "tenant")).toEqual(["tenant/blobs/k", "tenant2/blobs/k"]);
  });

  it("pages through listings of more than 1,000 keys", async () => {
    const store = fresh();
    const names = Array.from({ length: 1003 }, (_, i) => `index/${String(i).padStart(4, "0")}`);
    for (let i = 0; i < names.length; i += 25) {
      await Promise.all(names.slice(i, i + 25).map((key) => store.put(key, new Uint8Array([1]))));
    }
    await store.put("other/x", new Uint8Array([1]));
    const seen: ObjectInfo[] = [];
    for await (const info of store.list("index/")) seen.push(info);
    expect(seen.map((info) => info.key).sort()).toEqual(names);
  });
});

describe("S3 store errors", () => {
  it("names the endpoint, never the secret, when the endpoint refuses connections", async () => {
    const port = await closedPort();
    const endpoint = `http://127.0.0.1:${port}`;
    const store = openS3Store({
      bucket: "b", prefix: "p", endpoint, forcePathStyle: true, maxAttempts: 1,
      accessKeyId: "AKIDEXAMPLE", secretAccessKey: SECRET, sessionToken: "TOKENtokenTOKEN456",
    });
    const attempts: Array<() => Promise<unknown>> = [
      () => store.put("blobs/x", randomBytes(10)),
      () => store.get("blobs/x"),
      () => store.stat("blobs/x"),
      () => store.delete("blobs/x"),
      () => keys(store),
    ];
    for (const attempt of attempts) {
      const err = await attempt().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreError);
      const { message, stack } = err as Error;
      expect(message).toContain(`cannot reach ${endpoint}`);
      expect(message).toContain("s3://b/p");
      expect(message).toContain("ECONNREFUSED");
      for (const text of [message, String(stack)]) {
        expect(text).not.toContain(SECRET);
        expect(text).not.toContain("TOKENtokenTOKEN456");
      }
    }
  });

  it("treats 412 on the conditional PUT as 'already there'", async () => {
    await withFakeS3(
      (req) => (req.method === "HEAD" ? { status: 404 } : s3Error(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")),
      async (store) => {
        expect(await store.put("blobs/x", randomBytes(10))).toBe(false);
      },
    );
  });

  it("a 412 on a retried PUT whose first answer was lost means 'stored': the first may have landed", async () => {
    const methods: string[] = [];
    await withFakeS3(
      (req) => {
        methods.push(req.method);
        if (req.method === "HEAD") return { status: 404 };
        // The first PUT lands but its answer breaks off; the retry finds the object there.
        return methods.filter((m) => m === "PUT").length === 1
          ? { status: 200, headers: { "content-length": "100" }, body: "", hangUp: true }
          : s3Error(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold");
      },
      async (store) => {
        expect(await store.put("blobs/x", randomBytes(10))).toBe(true);
        expect(methods).toEqual(["HEAD", "PUT", "PUT"]);
      },
    );
  });

  it("on 409 ConditionalRequestConflict, answers false only once the other write has landed", async () => {
    const conflict = s3Error(409, "ConditionalRequestConflict", "A conflicting conditional operation is in progress");
    for (const landsAfterConflict of [true, false]) {
      let heads = 0;
      await withFakeS3(
        (req) => (req.method === "HEAD" ? { status: ++heads > 1 && landsAfterConflict ? 200 : 404 } : conflict),
        async (store) => {
          const put = store.put("blobs/x", randomBytes(10));
          if (landsAfterConflict) expect(await put).toBe(false);
          else await expect(put).rejects.toBeInstanceOf(StoreError);
          expect(heads).toBe(2);
        },
      );
    }
  });

  it("re-opens a stream body when the SDK retries a failed PUT", async () => {
    const data = randomBytes(200_000);
    const bodies: Buffer[] = [];
    await withFakeS3(
      (req) => {
        if (req.method === "HEAD") return { status: 404 };
        bodies.push(req.body);
        return bodies.length === 1 ? s3Error(500, "InternalError", "try again") : { status: 200, headers: { etag: '"x"' } };
      },
      async (store) => {
        const body = streamBody(data);
        expect(await store.put("blobs/x", body, { sha256: sha256(data) })).toBe(true);
        expect(body.opens).toBe(2);
        expect(bodies).toHaveLength(2);
        expect(bodies[1]?.equals(data)).toBe(true);
      },
    );
  });

  it("turns a connection dropped mid-body into a StoreError on the stream", async () => {
    await withFakeS3(
      () => ({ status: 200, headers: { "content-length": "100000" }, body: "x".repeat(50_000), hangUp: true }),
      async (store) => {
        const stream = await store.get("blobs/x");
        const err = await readAll(stream).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(StoreError);
        expect((err as Error).message).toContain("s3://fake/p blobs/x");
      },
    );
  });

  it("trims an answer larger than the range asked for", async () => {
    const data = randomBytes(1000);
    await withFakeS3(
      // Like s3rver for `bytes=0-0`: 206 with the whole object.
      () => ({ status: 206, headers: { "content-range": "bytes 0-999/1000" }, body: data }),
      async (store) => {
        const got = await getBytes(store, "blobs/x", { range: { offset: 0, length: 1 } });
        expect(got.equals(data.subarray(0, 1))).toBe(true);
      },
    );
    await withFakeS3(
      // A server that ignores Range altogether.
      () => ({ status: 200, body: data }),
      async (store) => {
        const got = await getBytes(store, "blobs/x", { range: { offset: 10, length: 20 } });
        expect(got.equals(data.subarray(10, 30))).toBe(true);
      },
    );
  });

  it("goes on to the conditional PUT when HEAD is forbidden (no s3:ListBucket)", async () => {
    const methods: string[] = [];
    await withFakeS3(
      (req) => {
        methods.push(req.method);
        return req.method === "HEAD" ? { status: 403 } : { status: 200, headers: { etag: '"x"' } };
      },
      async (store) => {
        expect(await store.put("blobs/x", randomBytes(10))).toBe(true);
        expect(methods).toEqual(["HEAD", "PUT"]);
      },
    );
  });

  it("reports a server error with the store, key and S3 code, and no secret", async () => {
    await withFakeS3(
      () => s3Error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match"),
      async (store) => {
        const err = await store.get("blobs/x").catch((e: unknown) => e);
        expect(err).toBeInstanceOf(StoreError);
        const { message } = err as Error;
        expect(message).toContain("s3://fake/p blobs/x");
        expect(message).toContain("SignatureDoesNotMatch");
        expect(message).not.toContain(SECRET);
      },
    );
  });
});

describe("openStore", () => {
  it("opens paths and file: URLs as directory stores", () => {
    expect(openStore("file:///srv/backup").location).toBe("/srv/backup");
    expect(openStore("/srv/backup/").location).toBe("/srv/backup");
    expect(openStore("relative/repo").location).toBe(join(process.cwd(), "relative/repo"));
  });

  it("opens s3:// URLs with the bucket and prefix from the URL", () => {
    expect(openStore("s3://bucket").location).toBe("s3://bucket");
    expect(openStore("s3://bucket/some/prefix/").location).toBe("s3://bucket/some/prefix");
  });

  it("rejects other schemes and empty locations with ConfigError", () => {
    expect(() => openStore("ftp://host/x")).toThrow(ConfigError);
    expect(() => openStore("s3:///x")).toThrow(ConfigError);
    expect(() => openStore("")).toThrow(ConfigError);
  });
});

async function closedPort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

interface FakeRequest {
  method: string;
  url: string;
  body: Buffer;
}

interface FakeResponse {
  status: number;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Drop the connection after writing the body, short of its content-length. */
  hangUp?: boolean;
}

function s3Error(status: number, code: string, message: string): FakeResponse {
  return {
    status,
    headers: { "content-type": "application/xml" },
    body: `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`,
  };
}

/** Runs `test` against an S3 store whose every request is answered by `respond`. */
async function withFakeS3(respond: (req: FakeRequest) => FakeResponse, test: (store: Store) => Promise<void>): Promise<void> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const answer = respond({ method: req.method ?? "", url: req.url ?? "", body: Buffer.concat(chunks) });
      res.writeHead(answer.status, answer.headers);
      if (answer.hangUp) res.write(answer.body ?? "", () => res.socket?.destroy());
      else res.end(req.method === "HEAD" ? undefined : answer.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const store = openS3Store({
    bucket: "fake", prefix: "p", endpoint: `http://127.0.0.1:${port}`, forcePathStyle: true,
    accessKeyId: "AKIDEXAMPLE", secretAccessKey: SECRET, maxAttempts: 3,
  });
  try {
    await test(store);
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
