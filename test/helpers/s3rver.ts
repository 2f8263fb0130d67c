import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, relative, sep } from "node:path";
import { createInterface } from "node:readline";
import { openS3Store, type S3StoreOptions } from "../../src/store/s3.js";

/** Method, URL and headers of a PUT or POST s3rver received, for asserting what went on the wire. */
export interface RecordedRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
}

export interface S3rverHandle {
  endpoint: string;
  bucket: string;
  /** Every PUT and POST so far, oldest first. */
  requests: RecordedRequest[];
  /** Every GET and HEAD so far, oldest first, as "GET /bucket/key?query". */
  reads: string[];
  /**
   * The reads so far, once every request the server received before this call has been logged
   * (the log comes over a pipe, after the client already had its answer): a marker request
   * is sent and waited for, so a count taken after a command exited is complete.
   */
  settledReads(): Promise<string[]>;
  close(): Promise<void>;
}

// s3rver's ListObjectsV2 continuation token is DES-encrypted, which OpenSSL 3 (Node >= 17) only
// offers with the legacy provider: without it any listing past 1,000 keys fails with a 500.
// So the server runs in its own process with --openssl-legacy-provider. That also keeps its
// winston logger's process-wide exception handlers out of the test worker.
const CHILD = `
const S3rver = require(process.env.S3RVER_MODULE);
const server = new S3rver({
  port: 0, address: "127.0.0.1", silent: true,
  directory: process.env.S3RVER_DIR,
  configureBuckets: [{ name: process.env.S3RVER_BUCKET }],
});
server.run().then((address) => {
  server.httpServer.on("request", (req) => {
    if (req.method === "GET" || req.method === "HEAD") {
      process.stdout.write(JSON.stringify({ read: req.method + " " + req.url }) + "\\n");
      return;
    }
    if (req.method !== "PUT" && req.method !== "POST") return;
    process.stdout.write(JSON.stringify({ request: { method: req.method, url: req.url, headers: req.headers } }) + "\\n");
  });
  process.stdout.write(JSON.stringify({ port: address.port }) + "\\n");
}, (err) => { console.error(err); process.exit(1); });
// Exit with the test worker, however it ends.
process.stdin.on("end", () => process.exit(0)).resume();
`;

/** Starts a fresh s3rver with an empty bucket on a free port. */
export async function startS3rver(bucket = "vaultik-test"): Promise<S3rverHandle> {
  const dir = await mkdtemp(join(tmpdir(), "vaultik-s3rver-"));
  const child = spawn(process.execPath, ["--openssl-legacy-provider", "-e", CHILD], {
    env: {
      ...process.env,
      S3RVER_MODULE: createRequire(import.meta.url).resolve("s3rver"),
      S3RVER_DIR: dir,
      S3RVER_BUCKET: bucket,
    },
    stdio: ["pipe", "pipe", "inherit"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const requests: RecordedRequest[] = [];
  const reads: string[] = [];
  const waiters = new Map<string, () => void>();
  let markers = 0;
  const port = await new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout }).on("line", (line) => {
      const message = JSON.parse(line) as { port?: number; request?: RecordedRequest; read?: string };
      if (message.request) requests.push(message.request);
      if (message.read !== undefined) {
        reads.push(message.read);
        waiters.get(message.read)?.();
      }
      if (message.port !== undefined) resolve(message.port);
    });
    child.once("error", reject);
    void exited.then(() => reject(new Error("s3rver exited before it was ready")));
  });
  return {
    endpoint: `http://127.0.0.1:${port}`,
    bucket,
    requests,
    reads,
    async settledReads() {
      const path = `/${bucket}?vaultik-test-marker=${++markers}`;
      const seen = new Promise<void>((resolve) => waiters.set(`GET ${path}`, resolve));
      await fetch(`http://127.0.0.1:${port}${path}`).then((r) => r.arrayBuffer());
      await seen;
      return reads.filter((r) => !r.includes("vaultik-test-marker="));
    },
    async close() {
      child.stdin.end();
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A config's `s3:` section for `server` under `prefix`, with s3rver's built-in credentials. */
export function s3rverConfigYaml(server: S3rverHandle, prefix: string): string {
  return [
    "s3:",
    `  endpoint: ${server.endpoint}`,
    `  bucket: ${server.bucket}`,
    `  prefix: ${prefix}`,
    "  access_key_id: S3RVER",
    "  secret_access_key: S3RVER",
    "  region: us-east-1",
    "  force_path_style: true",
  ].join("\n");
}

/**
 * Options for an S3 store on `server` under `prefix`, with s3rver's built-in credentials.
 * Retries back off from 1 ms, not 100: s3rver resets some requests every time (a range of an
 * empty object), and tests should learn that in milliseconds.
 */
export function s3rverStoreOptions(server: S3rverHandle, prefix = ""): S3StoreOptions {
  return {
    bucket: server.bucket,
    prefix,
    endpoint: server.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    accessKeyId: "S3RVER",
    secretAccessKey: "S3RVER",
    retryBaseMs: 1,
  };
}

/** Environment for the CLI to reach `server` as `BUCKET PREFIX`, with s3rver's built-in credentials. */
export function s3rverCliEnv(server: S3rverHandle): Record<string, string> {
  return { VAULTIK_S3_ENDPOINT: server.endpoint, AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER", AWS_REGION: "us-east-1" };
}

/**
 * Copies every object of a directory repository into `server` under `prefix`, byte for byte:
 * a repository crafted or damaged on disk, served by S3.
 */
export async function mirrorToS3rver(repoDir: string, server: S3rverHandle, prefix: string): Promise<void> {
  const store = openS3Store(s3rverStoreOptions(server, prefix));
  const files = (await readdir(repoDir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile());
  for (const f of files) {
    const abs = join(f.parentPath, f.name);
    const key = relative(repoDir, abs).split(sep).join("/");
    if (key.startsWith(".")) continue; // the directory store's own temp and lock files
    await store.put(key, await readFile(abs));
  }
}

/** A fresh s3rver serving a copy of the directory repository `repoDir` under `prefix`. */
export async function s3rverMirroring(repoDir: string, prefix: string): Promise<S3rverHandle> {
  const server = await startS3rver();
  try {
    await mirrorToS3rver(repoDir, server, prefix);
  } catch (err) {
    await server.close();
    throw err;
  }
  return server;
}
