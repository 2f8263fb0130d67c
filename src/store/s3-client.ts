import type { S3Client } from "@aws-sdk/client-s3";
import { retryStrategy, type RetryPolicy } from "./s3-retry.js";

// The S3 client, built on first use: the SDK costs a few hundred ms to import, and a run
// against a local repository never pays it.

export interface S3StoreOptions {
  bucket: string;
  /** Key prefix inside the bucket; "", "backups" and "backups/" are all accepted. */
  prefix?: string;
  /** For MinIO, R2, B2, Ceph, Garage… Default: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, then AWS. */
  endpoint?: string;
  /** Default: AWS_REGION, AWS_DEFAULT_REGION, then "us-east-1". */
  region?: string;
  /** Without both keys the SDK's standard chain is used (environment, profile, SSO, IMDS…). */
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  /** `https://host/bucket` addressing. Default: true when a custom endpoint is set. */
  forcePathStyle?: boolean;
  /** Bodies larger than this go up as multipart uploads. Default 64 MiB. */
  multipartThreshold?: number;
  /** Multipart part size, at least 5 MiB. Default 16 MiB. */
  partSize?: number;
  /**
   * Requests per operation, the first included, for throttling, 5xx, resets, timeouts and cut
   * or unreadable answers. Default: AWS_MAX_ATTEMPTS, else 10 (see s3-retry.ts).
   */
  maxAttempts?: number;
  /** Backoff before the first retry, doubling after. Default: VAULTIK_S3_RETRY_BASE_MS, else 100. */
  retryBaseMs?: number;
  /** No retry starts this long after an operation began. Default: VAULTIK_S3_RETRY_TOTAL_MS, else 120000. */
  retryTotalMs?: number;
  /** A request idle this long is abandoned (and retried). Default: VAULTIK_S3_TIMEOUT_MS, else 120000. */
  timeoutMs?: number;
}

export type Sdk = typeof import("@aws-sdk/client-s3");

export interface Connection {
  sdk: Sdk;
  client: S3Client;
}

export interface Endpoint {
  region: string;
  /** undefined: AWS itself. */
  url: string | undefined;
  /** For messages: the URL without credentials, or the AWS regional endpoint. */
  name: string;
}

/** Where requests go: the options first, then the AWS_* environment, then AWS in us-east-1. */
export function endpointOf(opts: S3StoreOptions, env: NodeJS.ProcessEnv): Endpoint {
  const region = opts.region ?? env["AWS_REGION"] ?? env["AWS_DEFAULT_REGION"] ?? "us-east-1";
  const url = opts.endpoint ?? env["AWS_ENDPOINT_URL_S3"] ?? env["AWS_ENDPOINT_URL"];
  return { region, url, name: describeEndpoint(url, region) };
}

/** A function that imports the SDK and builds the client once, however often it is called. */
export function lazyConnection(opts: S3StoreOptions, endpoint: Endpoint, retry: RetryPolicy, timeoutMs: number): () => Promise<Connection> {
  let loading: Promise<Connection> | undefined;
  return () =>
    (loading ??= import("@aws-sdk/client-s3").then((sdk) => ({
      sdk,
      client: new sdk.S3Client({
        region: endpoint.region,
        endpoint: endpoint.url,
        forcePathStyle: opts.forcePathStyle ?? endpoint.url !== undefined,
        followRegionRedirects: true,
        maxAttempts: retry.maxAttempts,
        retryStrategy: retryStrategy(retry),
        credentials:
          opts.accessKeyId && opts.secretAccessKey
            ? { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey, sessionToken: opts.sessionToken }
            : undefined,
        // By default the SDK streams bodies as aws-chunked with a CRC32 trailer, which older
        // S3-compatible servers (s3rver included) store verbatim, framing and all. We always
        // send an explicit x-amz-checksum-sha256 header instead, so nothing is lost.
        requestChecksumCalculation: "WHEN_REQUIRED",
        responseChecksumValidation: "WHEN_REQUIRED",
        requestHandler: { connectionTimeout: Math.min(10_000, timeoutMs), socketTimeout: timeoutMs },
      }),
    })));
}

function describeEndpoint(endpoint: string | undefined, region: string): string {
  if (endpoint === undefined) return `https://s3.${region}.amazonaws.com`;
  try {
    const url = new URL(endpoint);
    url.username = "";
    url.password = "";
    return url.href.replace(/\/$/, "");
  } catch {
    return endpoint;
  }
}
