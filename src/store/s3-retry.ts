import { AsyncLocalStorage } from "node:async_hooks";
import { UsageError } from "../errors.js";
import { statusOf } from "./errors.js";

// When and how often the S3 store tries a request again. One policy for everything: the SDK's
// own retry loop asks it (through the RetryStrategyV2 interface) after a failed request, and a
// download whose body broke off asks it before fetching the rest (s3-download.ts). A "budget"
// is one store operation's share: a download and its resumptions draw on the same one, so a
// body cut short five times is five attempts, not five fresh sets of retries.

export interface RetryPolicy {
  /** Requests per operation, the first included. */
  maxAttempts: number;
  /** Backoff before the first retry; doubles with each, with full jitter. */
  baseMs: number;
  /** No single wait is longer. */
  maxDelayMs: number;
  /** No retry starts later than this after the operation began. */
  totalMs: number;
}

export const RETRY_DEFAULTS: RetryPolicy = { maxAttempts: 10, baseMs: 100, maxDelayMs: 5_000, totalMs: 120_000 };

/** The policy from the store's options, then AWS_MAX_ATTEMPTS and VAULTIK_S3_RETRY_*, then the defaults. */
export function retryPolicy(
  opts: { maxAttempts?: number; retryBaseMs?: number; retryTotalMs?: number },
  env: NodeJS.ProcessEnv,
): RetryPolicy {
  return {
    maxAttempts: opts.maxAttempts ?? envNumber(env, "AWS_MAX_ATTEMPTS", 1) ?? RETRY_DEFAULTS.maxAttempts,
    baseMs: opts.retryBaseMs ?? envNumber(env, "VAULTIK_S3_RETRY_BASE_MS", 0) ?? RETRY_DEFAULTS.baseMs,
    maxDelayMs: RETRY_DEFAULTS.maxDelayMs,
    totalMs: opts.retryTotalMs ?? envNumber(env, "VAULTIK_S3_RETRY_TOTAL_MS", 0) ?? RETRY_DEFAULTS.totalMs,
  };
}

/** A whole number of at least `min` from the environment, or undefined when unset. */
export function envNumber(env: NodeJS.ProcessEnv, name: string, min: number): number | undefined {
  const text = env[name];
  if (text === undefined || text === "") return undefined;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < min) {
    throw new UsageError(name, `must be a whole number of at least ${min}, got ${JSON.stringify(text)}`);
  }
  return value;
}

/** One operation's attempts so far, against the policy. */
export class RetryBudget {
  attempts = 0;
  private readonly started: number;

  constructor(
    readonly policy: RetryPolicy,
    private readonly now: () => number = Date.now,
    private readonly random: () => number = Math.random,
  ) {
    this.started = now();
  }

  /**
   * The wait before another attempt, or undefined when the budget is spent. Full jitter
   * (a uniform wait up to the exponential bound) keeps many clients that failed together from
   * retrying together.
   */
  nextDelay(): number | undefined {
    const { maxAttempts, baseMs, maxDelayMs, totalMs } = this.policy;
    if (this.attempts >= maxAttempts) return undefined;
    const bound = Math.min(maxDelayMs, baseMs * 2 ** Math.max(0, this.attempts - 1));
    const delay = Math.floor(this.random() * (bound + 1));
    if (this.now() - this.started + delay > totalMs) return undefined;
    return delay;
  }
}

const current = new AsyncLocalStorage<RetryBudget>();

/** Runs `fn` with every SDK request it makes drawing on `budget`. */
export function withBudget<T>(budget: RetryBudget | undefined, fn: () => Promise<T>): Promise<T> {
  // undefined: each request a budget of its own.
  return current.run(budget as RetryBudget, fn);
}

interface Token {
  budget: RetryBudget;
  retries: number;
  delay: number;
  getRetryCount(): number;
  getRetryDelay(): number;
}

function token(budget: RetryBudget, retries: number, delay: number): Token {
  return { budget, retries, delay, getRetryCount: () => retries, getRetryDelay: () => delay };
}

/** The SDK's RetryStrategyV2, deciding by `policy` and the budget of the operation in progress. */
export function retryStrategy(policy: RetryPolicy) {
  return {
    async acquireInitialRetryToken(_scope: string): Promise<Token> {
      // Outside withBudget (lib-storage's part uploads) every request has a budget of its own.
      const budget = current.getStore() ?? new RetryBudget(policy);
      budget.attempts++;
      return token(budget, 0, 0);
    },
    async refreshRetryTokenForRetry(previous: Token, info: { error?: unknown; errorType: string }): Promise<Token> {
      const delay = isRetryable(info) ? previous.budget.nextDelay() : undefined;
      // Throwing makes the SDK give up and report the request's own error.
      if (delay === undefined) throw info.error ?? new Error("not retried");
      previous.budget.attempts++;
      return token(previous.budget, previous.retries + 1, delay);
    },
    recordSuccess(_token: Token): void {},
  };
}

/**
 * What the SDK classes as throttling, transient or a server error, and also an answer that
 * came with a 2xx status yet could not be read (a listing whose XML was cut short by a proxy
 * that closed cleanly): the server did its part, the bytes were lost on the way. Other client
 * errors (403, 404, 412, a credentials problem) would only fail again.
 */
export function isRetryable(info: { error?: unknown; errorType: string }): boolean {
  if ((info.error as { name?: unknown } | undefined)?.name === "AbortError") return false;
  if (info.errorType !== "CLIENT_ERROR") return true;
  const status = statusOf(info.error);
  return status !== undefined && status >= 200 && status < 300;
}
