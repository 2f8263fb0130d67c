import { describe, expect, it } from "vitest";
import { UsageError } from "../src/errors.js";
import { isRetryable, RETRY_DEFAULTS, RetryBudget, retryPolicy } from "../src/store/s3-retry.js";

// The S3 store's retry policy (issue 14 item 9) on an injected clock and random source: how long
// it waits, when it stops, what it retries and where its settings come from.

describe("retry budget", () => {
  const policy = { maxAttempts: 6, baseMs: 100, maxDelayMs: 500, totalMs: 10_000 };

  it("waits up to a bound that doubles from the base, capped, with full jitter", () => {
    const top = new RetryBudget(policy, () => 0, () => 0.999999);
    const bottom = new RetryBudget(policy, () => 0, () => 0);
    const bounds: number[] = [];
    for (let attempt = 1; attempt < 6; attempt++) {
      top.attempts = bottom.attempts = attempt;
      bounds.push(top.nextDelay()!);
      expect(bottom.nextDelay()).toBe(0);
    }
    expect(bounds).toEqual([100, 200, 400, 500, 500]);
  });

  it("stops at the attempt limit", () => {
    const budget = new RetryBudget(policy, () => 0, () => 0.5);
    budget.attempts = 5;
    expect(budget.nextDelay()).toBeDefined();
    budget.attempts = 6;
    expect(budget.nextDelay()).toBeUndefined();
  });

  it("starts no retry that would begin past the time limit", () => {
    let now = 1_000;
    const budget = new RetryBudget(policy, () => now, () => 0.5);
    budget.attempts = 1;
    now += 9_900;
    expect(budget.nextDelay()).toBe(50); // starts at 9,950 ms: within 10 s
    now += 60;
    expect(budget.nextDelay()).toBeUndefined(); // would start at 10,010 ms
  });
});

describe("what is retried", () => {
  const sdk = (name: string, status?: number) => Object.assign(new Error(name), { name, $metadata: { httpStatusCode: status } });

  it("throttling, transient and server errors, and an unreadable 2xx answer", () => {
    expect(isRetryable({ errorType: "THROTTLING", error: sdk("SlowDown", 503) })).toBe(true);
    expect(isRetryable({ errorType: "TRANSIENT", error: Object.assign(new Error("aborted"), { code: "ECONNRESET" }) })).toBe(true);
    expect(isRetryable({ errorType: "SERVER_ERROR", error: sdk("NotImplemented", 501) })).toBe(true);
    // A listing cut short: the SDK saw status 200 and XML it could not parse.
    expect(isRetryable({ errorType: "CLIENT_ERROR", error: sdk("Error", 200) })).toBe(true);
  });

  it("not what would fail again, nor an abort", () => {
    for (const [name, status] of [["AccessDenied", 403], ["NoSuchKey", 404], ["PreconditionFailed", 412]] as const) {
      expect(isRetryable({ errorType: "CLIENT_ERROR", error: sdk(name, status) }), name).toBe(false);
    }
    expect(isRetryable({ errorType: "CLIENT_ERROR", error: new Error("Could not load credentials from any providers") })).toBe(false);
    expect(isRetryable({ errorType: "TRANSIENT", error: Object.assign(new Error("Request aborted"), { name: "AbortError" }) })).toBe(false);
  });
});

describe("retry settings", () => {
  it("come from the options, then AWS_MAX_ATTEMPTS and VAULTIK_S3_RETRY_*, then the defaults", () => {
    expect(retryPolicy({}, {})).toEqual(RETRY_DEFAULTS);
    const env = { AWS_MAX_ATTEMPTS: "3", VAULTIK_S3_RETRY_BASE_MS: "0", VAULTIK_S3_RETRY_TOTAL_MS: "5000" };
    expect(retryPolicy({}, env)).toEqual({ ...RETRY_DEFAULTS, maxAttempts: 3, baseMs: 0, totalMs: 5000 });
    expect(retryPolicy({ maxAttempts: 7, retryBaseMs: 9 }, env)).toMatchObject({ maxAttempts: 7, baseMs: 9, totalMs: 5000 });
  });

  it("refuse a malformed variable, naming it", () => {
    for (const [name, value] of [["AWS_MAX_ATTEMPTS", "0"], ["VAULTIK_S3_RETRY_BASE_MS", "fast"], ["VAULTIK_S3_RETRY_TOTAL_MS", "-1"]]) {
      let err: unknown;
      try {
        retryPolicy({}, { [name!]: value });
      } catch (e) {
        err = e;
      }
      expect(err, name).toBeInstanceOf(UsageError);
      expect((err as Error).message).toContain(name!);
    }
  });
});
