import { readFileSync } from "node:fs";
import { basename, extname } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import type { Command } from "commander";
import { readCheckRecord } from "../check/last-check.js";
import { appRetentions, type Config } from "../config/index.js";
import { parseDuration } from "../config/units.js";
import { hostPort } from "../config/validate.js";
import { ConfigError, errorMessage, UsageError } from "../errors.js";
import type { FleetRepo } from "../serve/fleet.js";
import type { Auth } from "../serve/http.js";
import { DEFAULT_STALE_AFTER_MS } from "../serve/status.js";
import { cacheFor, cacheRoot } from "./cache.js";
import { asUsage, loadIdentities, repoFromArgs } from "./context.js";
import type { Io } from "./io.js";

// `vaultik serve`: the fleet dashboard on the recovery machine (docs/SERVE.md). Opens the
// repositories the user names, polls them, serves the page and its API until SIGINT/SIGTERM.

interface Flags {
  config?: string[];
  listen: string;
  poll: string;
  staleAfter?: string;
  tokenFile?: string;
  basicAuthFile?: string;
  identity?: string;
  indexPrefix?: string;
  cache?: boolean;
}

const EXAMPLES = `
Each BUCKET_OR_DIR starts a repository; an argument after it that does not start with /, ./,
../, file:// or s3:// is its PREFIX (write s3://NAME for a second bucket). The name of a
repository in URLs is its config file's name without extension, or BUCKET[-PREFIX].

Listening on anything but the loopback address needs --token-file or --basic-auth-file (the
server holds the private key). Stale: a host whose latest snapshot is older than serve.hosts.NAME.stale_after,
else --stale-after, else the config's serve.stale_after, else 26h. Alerts go where the
config's alerts section says (webhook, ntfy, Slack, Discord, email), when a host goes stale, a run is abandoned, and when
it recovers.

Examples:
  VAULTIK_PRIVATE_KEY_FILE=~/.vaultik/key vaultik serve -c /etc/vaultik/office.yml
  vaultik serve /srv/backups s3://offsite hosts --poll 10m --stale-after 3d
  vaultik serve -c fleet.yml --listen 0.0.0.0:8080 --basic-auth-file /etc/vaultik/serve.auth`;

export function registerServe(program: Command, io: Io): void {
  program
    .command("serve")
    .description("serve a fleet dashboard (web page, JSON API, /metrics) of one or more repositories, and alert when a host stops backing up")
    .argument("[repositories...]", "BUCKET_OR_DIR [PREFIX], repeatable (or --config FILE)")
    .option("-c, --config <file>", "a repository from this config (with its serve, retention and alerts sections); repeatable", (v: string, all: string[] = []) => [...all, v])
    .option("--listen <host:port>", "address to listen on", "127.0.0.1:8080")
    .option("--poll <duration>", "how often to list each repository", "5m")
    .option("--stale-after <duration>", "a host whose latest snapshot is older is stale (default: the config's serve.stale_after, else 26h)")
    .option("--token-file <file>", "require `Authorization: Bearer TOKEN`, the token read from FILE")
    .option("--basic-auth-file <file>", "require HTTP basic auth, `user:password` read from FILE")
    .option("--identity <file>", "age identity file (default: VAULTIK_PRIVATE_KEY or VAULTIK_PRIVATE_KEY_FILE)")
    .option("--index-prefix <prefix>", "where snapshots live in the repositories")
    .option("--no-cache", "keep no decrypted snapshot databases in the local cache (VAULTIK_CACHE_DIR)")
    .addHelpText("after", EXAMPLES)
    .action(async (args: string[], flags: Flags) => serve(io, args, flags));
}

async function serve(io: Io, args: readonly string[], flags: Flags): Promise<void> {
  const listen = asUsage(() => hostPort(flags.listen, "--listen"), "--listen");
  const auth = readAuth(flags);
  if (auth === undefined && !isLoopback(listen.host)) {
    throw new ConfigError("--listen", `${flags.listen} is not a loopback address: the server holds the private key, so give --token-file or --basic-auth-file`);
  }
  const pollMs = asUsage(() => parseDuration(flags.poll, "--poll"));
  // Each poll lists the whole repository: more often than every few seconds only costs requests.
  if (pollMs < 5000) throw new UsageError("--poll", `must be at least 5s, got ${JSON.stringify(flags.poll)}`);
  const staleAfterFlag = flags.staleAfter === undefined ? undefined : asUsage(() => parseDuration(flags.staleAfter!, "--stale-after"));
  if (staleAfterFlag !== undefined && staleAfterFlag < 1) throw new UsageError("--stale-after", "must be longer than 0");
  const identities = loadIdentities(flags.identity);
  const opened = await openRepositories(args, flags);
  if (opened.length === 0) throw new UsageError("repositories", "name at least one: BUCKET_OR_DIR [PREFIX] or --config FILE");
  const log = (line: string) => io.err(`vaultik serve: ${line}`);
  // Loaded here, not at the top: every vaultik command loads this module to register `serve`,
  // and the server's modules (prom-client among them) cost a backup ~0.1 s of start-up.
  const [{ Alerter }, { Fleet }, { startServeServer }] = await Promise.all([
    import("../daemon/alerts.js"),
    import("../serve/fleet.js"),
    import("../serve/http.js"),
  ]);
  const slugs = new Set<string>();
  const root = cacheRoot();
  const repos: FleetRepo[] = opened.map(({ repo, config, name }) => ({
    slug: uniqueSlug(name, slugs),
    repo,
    retention: config?.retention ?? {},
    hostRetention: config ? appRetentions(config) : undefined,
    staleAfterMs: staleAfterFlag ?? config?.serve?.staleAfter ?? DEFAULT_STALE_AFTER_MS,
    hostStaleAfterMs: config?.serve?.hosts ?? new Map(),
    alerts: Alerter.fromConfig(config?.alerts, log),
    lastCheck: () => readCheckRecord(root, repo.location),
  }));
  const repeats = opened.map((o) => o.config?.alerts?.repeatAfter).filter((n): n is number => n !== undefined);
  const cache = cacheFor({ cache: flags.cache });
  const fleet = new Fleet({ repos, identities, cache, repeatAfterMs: repeats.length > 0 ? Math.min(...repeats) : undefined, log });
  const server = await startServeServer({ fleet, identities, cache, host: listen.host, port: listen.port, auth, log });
  io.out(`vaultik serve: listening on ${server.url}`);
  const abort = new AbortController();
  const stop = io.onInterrupt(() => abort.abort());
  try {
    for (let first = true; ; first = false) {
      await fleet.poll(abort.signal);
      // Said once: from here on the page has data (a first poll of a large fleet takes a while).
      if (first) log(`first poll done: ${repos.length} repositories, ${fleet.summaryCount} snapshots read`);
      await delay(pollMs, undefined, { signal: abort.signal });
    }
  } catch (err) {
    // SIGINT/SIGTERM is how a server is meant to end: exit 0 once the socket is closed.
    if (!abort.signal.aborted) throw err;
  } finally {
    stop();
    await server.close();
  }
  io.out("vaultik serve: stopped");
}

async function openRepositories(args: readonly string[], flags: Flags): Promise<{ repo: FleetRepo["repo"]; config?: Config; name: string }[]> {
  const out: { repo: FleetRepo["repo"]; config?: Config; name: string }[] = [];
  for (const file of flags.config ?? []) {
    const { repo, config } = await repoFromArgs([], 0, { config: file, indexPrefix: flags.indexPrefix });
    out.push({ repo, config, name: basename(file, extname(file)) });
  }
  for (const group of groupArgs(args)) {
    const { repo } = await repoFromArgs(group, 0, { indexPrefix: flags.indexPrefix });
    const where = group[0]!.replace(/^(s3|file):\/\//, "").replace(/\/+$/, "");
    out.push({ repo, name: [basename(where), ...group.slice(1)].join("-") });
  }
  return out;
}

/** BUCKET_OR_DIR [PREFIX] groups: see EXAMPLES for when an argument is a PREFIX. */
function groupArgs(args: readonly string[]): string[][] {
  const groups: string[][] = [];
  for (const a of args) {
    const last = groups[groups.length - 1];
    const startsLocation = /^(\/|\.\.?\/|file:\/\/|s3:\/\/)/.test(a);
    if (last !== undefined && last.length === 1 && !startsLocation) last.push(a);
    else groups.push([a]);
  }
  return groups;
}

/** `^[a-z0-9][a-z0-9._-]{0,63}$`, unique among `taken` (a -2, -3… suffix). */
export function uniqueSlug(name: string, taken: Set<string>): string {
  const base = name.toLowerCase().replace(/[^a-z0-9._-]+/g, "-").replace(/^[^a-z0-9]+/, "").slice(0, 60) || "repo";
  let slug = base;
  for (let n = 2; taken.has(slug); n++) slug = `${base}-${n}`;
  taken.add(slug);
  return slug;
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

function readAuth(flags: Flags): Auth | undefined {
  if (flags.tokenFile !== undefined && flags.basicAuthFile !== undefined) {
    throw new UsageError("--token-file", "give --token-file or --basic-auth-file, not both");
  }
  if (flags.tokenFile !== undefined) {
    const token = secretFile(flags.tokenFile, "--token-file");
    if (/\s/.test(token)) throw new ConfigError("--token-file", "the token must be one word (no spaces)");
    return { kind: "token", token };
  }
  if (flags.basicAuthFile !== undefined) {
    const text = secretFile(flags.basicAuthFile, "--basic-auth-file");
    const colon = text.indexOf(":");
    if (colon < 1 || colon === text.length - 1) throw new ConfigError("--basic-auth-file", "expected one line user:password");
    return { kind: "basic", user: text.slice(0, colon), password: text.slice(colon + 1) };
  }
  return undefined;
}

/** The file's text without its trailing newline; never quoted in an error. */
function secretFile(path: string, flag: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(flag, `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`);
  }
  const value = text.replace(/\r?\n$/, "");
  if (value === "" || value.includes("\n")) throw new ConfigError(flag, `${path} must hold one line`);
  return value;
}
