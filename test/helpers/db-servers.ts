import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeFile } from "node:fs/promises";
import { createInterface } from "node:readline";
import { runJob } from "../../src/backup/job.js";
import type { Config } from "../../src/config/index.js";
import { openFsStore } from "../../src/store/fs.js";
import { localRepo, type LocalRepo } from "./setup.js";

// Real database servers from the Debian packages, each in its own temp directory on 127.0.0.1
// (a free port) and a unix socket there: never the system's own service. Readiness is polled
// with a deadline. `Writer` is the application that keeps inserting while a backup runs: it
// sends one statement at a time through the database's own client and counts the ones the
// server acknowledged, so a test knows exactly which rows were committed.

/** The server binaries of the newest PostgreSQL installed (Debian 12 has 15), as pg_dump's wrapper picks. */
export const PG_BIN = newestPostgres("/usr/lib/postgresql");

function newestPostgres(root: string): string {
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : [];
  return join(root, versions[0] ?? "15", "bin");
}
const READY_DEADLINE_MS = 60_000;

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Runs `check` until it returns true; the pause between tries is polling, not ordering. */
export async function pollUntil(what: string, check: () => boolean, ms = READY_DEADLINE_MS, alive: () => boolean = () => true): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (!alive()) throw new Error(`${what} exited before it was ready`);
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function run(argv: readonly string[], options: { env?: NodeJS.ProcessEnv; input?: string | Buffer } = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(argv[0]!, argv.slice(1), { env: { ...process.env, ...options.env }, input: options.input, maxBuffer: 256 << 20 });
  return { code: r.status, stdout: r.stdout?.toString() ?? "", stderr: r.stderr?.toString() ?? "" };
}

export function mustRun(argv: readonly string[], options: { env?: NodeJS.ProcessEnv; input?: string | Buffer } = {}): string {
  const r = run(argv, options);
  if (r.code !== 0) throw new Error(`${argv[0]} exited with ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** A server process and its directory; stop() ends it and removes the directory. */
export class Server {
  private exited: Promise<void>;
  constructor(
    readonly dir: string,
    readonly port: number,
    private readonly child: ChildProcess,
    private readonly stopSignal: NodeJS.Signals,
  ) {
    this.exited = new Promise((resolve) => child.once("exit", () => resolve()));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async stop(): Promise<void> {
    if (this.running) {
      this.child.kill(this.stopSignal);
      await this.exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function serverProcess(argv: readonly string[], log: string): ChildProcess {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
  const out: string[] = [];
  child.stdout!.setEncoding("utf8").on("data", (t: string) => out.push(t));
  child.stderr!.setEncoding("utf8").on("data", (t: string) => out.push(t));
  child.once("exit", () => writeFileSync(log, out.join("")));
  return child;
}

/** Waits until `check` passes; a server that dies or never gets ready is stopped and its dir removed. */
async function whenReady(server: Server, what: string, check: () => boolean): Promise<void> {
  try {
    await pollUntil(what, check, READY_DEADLINE_MS, () => server.running);
  } catch (err) {
    await server.stop();
    throw err;
  }
}

/** A private directory the `nobody` user can enter (PostgreSQL refuses to run as root). */
function tempDirFor(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  return dir;
}

const AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"];

export interface Postgres {
  server: Server;
  port: number;
  user: string;
  password: string;
  /** psql's standard output for `sql` against `db`. */
  psql(sql: string, db?: string): string;
  env: NodeJS.ProcessEnv;
}

export async function startPostgres(password: string): Promise<Postgres> {
  const dir = tempDirFor("vaultik-pg-");
  const data = join(dir, "data");
  const sock = join(dir, "sock");
  mkdirSync(data, { mode: 0o700 });
  mkdirSync(sock);
  const nobody = Number(mustRun(["id", "-u", "nobody"]).trim());
  const nogroup = Number(mustRun(["id", "-g", "nobody"]).trim());
  chownSync(data, nobody, nogroup);
  chownSync(sock, nobody, nogroup);
  const pwfile = join(dir, "pw");
  writeFileSync(pwfile, `${password}\n`);
  chmodSync(pwfile, 0o644);
  try {
    mustRun([...AS_NOBODY, `${PG_BIN}/initdb`, "-D", data, "-U", "postgres", `--pwfile=${pwfile}`, "-A", "scram-sha-256", "--no-sync"]);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const port = await freePort();
  const child = serverProcess(
    [...AS_NOBODY, `${PG_BIN}/postgres`, "-D", data, "-p", String(port), "-k", sock, "-h", "127.0.0.1", "-c", "fsync=off"],
    join(dir, "server.log"),
  );
  // SIGINT: PostgreSQL's fast shutdown (SIGTERM would wait for clients to leave).
  const server = new Server(dir, port, child, "SIGINT");
  const env = { PGPASSWORD: password, PGHOST: "127.0.0.1", PGPORT: String(port), PGUSER: "postgres" };
  await whenReady(server, "postgres", () => run([`${PG_BIN}/pg_isready`, "-q"], { env }).code === 0);
  return {
    server,
    port,
    user: "postgres",
    password,
    env,
    psql: (sql, db = "postgres") => mustRun([`${PG_BIN}/psql`, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql], { env }),
  };
}

export interface Mariadb {
  server: Server;
  port: number;
  socket: string;
  /** The client's standard output for `sql`, as root over the socket. */
  sql(sql: string, db?: string): string;
  /** The client's argv, as root over the socket (for restores and the writer). */
  client: string[];
}

export async function startMariadb(): Promise<Mariadb> {
  const dir = tempDirFor("vaultik-maria-");
  const data = join(dir, "data");
  const socket = join(dir, "mysqld.sock");
  try {
    mustRun(["mariadb-install-db", "--no-defaults", "--user=root", `--datadir=${data}`, "--auth-root-authentication-method=socket", "--skip-test-db"]);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const port = await freePort();
  const child = serverProcess(
    [
      "mariadbd", "--no-defaults", "--user=root", `--datadir=${data}`, `--socket=${socket}`, `--port=${port}`,
      "--bind-address=127.0.0.1", `--pid-file=${join(dir, "mysqld.pid")}`, "--innodb-flush-log-at-trx-commit=0",
      "--skip-log-bin",
    ],
    join(dir, "server.log"),
  );
  const server = new Server(dir, port, child, "SIGTERM");
  const client = ["mariadb", "--no-defaults", "--protocol=socket", `--socket=${socket}`, "-u", "root"];
  await whenReady(server, "mariadb", () => run([...client, "-e", "SELECT 1"]).code === 0);
  return {
    server,
    port,
    socket,
    client,
    sql: (sql, db) => mustRun([...client, "-N", "-B", ...(db ? [db] : []), "-e", sql]),
  };
}

export interface Redis {
  server: Server;
  port: number;
  env: NodeJS.ProcessEnv;
  cli(...args: string[]): string;
}

/** A Redis server on 127.0.0.1; with `rdb`, it starts from that dump, copied in as its dump.rdb. */
export async function startRedis(password: string, rdb?: Buffer): Promise<Redis> {
  const dir = tempDirFor("vaultik-redis-");
  if (rdb !== undefined) writeFileSync(join(dir, "dump.rdb"), rdb);
  const port = await freePort();
  const child = serverProcess(
    ["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--dbfilename", "dump.rdb",
      "--requirepass", password, "--save", "", "--appendonly", "no", "--daemonize", "no"],
    join(dir, "server.log"),
  );
  const server = new Server(dir, port, child, "SIGTERM");
  const env = { REDISCLI_AUTH: password };
  const cli = (...args: string[]) => mustRun(["redis-cli", "-h", "127.0.0.1", "-p", String(port), ...args], { env });
  await whenReady(server, "redis", () => run(["redis-cli", "-h", "127.0.0.1", "-p", String(port), "ping"], { env }).stdout.trim() === "PONG");
  return { server, port, env, cli };
}

/** Row i's value: what the writer inserts and what a restore must give back. */
export function rowValue(i: number): string {
  return createHash("sha256").update(`row ${i}`).digest("hex");
}

/** Whether `rows` ("id<TAB>value" lines) are exactly rows 1..n as the writer wrote them. */
export function prefixOf(rows: string): number {
  const lines = rows.split("\n").filter((l) => l !== "");
  lines.forEach((line, k) => {
    const want = `${k + 1}\t${rowValue(k + 1)}`;
    if (line !== want) throw new Error(`row ${k + 1} is ${JSON.stringify(line)}, expected ${JSON.stringify(want)}`);
  });
  return lines.length;
}

/**
 * The application: a database client fed one statement at a time on stdin. `statement(i)`
 * must insert row i and then print a line that is exactly `i`; the writer sends row i + 1 only
 * once it has seen that line, so `committed` is exactly the number of rows the server has.
 */
export class Writer {
  committed = 0;
  private child: ChildProcess;
  private stopping = false;
  private exited: Promise<number | null>;
  private waiters: { n: number; resolve: () => void }[] = [];
  private stderr = "";

  constructor(argv: readonly string[], env: NodeJS.ProcessEnv, private readonly statement: (i: number) => string) {
    // stdbuf: the clients buffer a pipe's output in full; the writer needs each line as it comes.
    this.child = spawn("stdbuf", ["-oL", ...argv], { env: { ...process.env, ...env }, stdio: ["pipe", "pipe", "pipe"] });
    this.exited = new Promise((resolve) => this.child.once("exit", (code) => resolve(code)));
    this.child.stderr!.setEncoding("utf8").on("data", (t: string) => (this.stderr += t));
    createInterface({ input: this.child.stdout! }).on("line", (line) => {
      if (line.trim() !== String(this.committed + 1)) return;
      this.committed++;
      for (const w of this.waiters.filter((w) => w.n <= this.committed)) w.resolve();
      this.waiters = this.waiters.filter((w) => w.n > this.committed);
      if (!this.stopping) this.send();
    });
    this.child.stdin!.on("error", () => {});
    this.send();
  }

  private send(): void {
    this.child.stdin!.write(this.statement(this.committed + 1));
  }

  /** Resolves once at least `n` rows are committed. */
  reached(n: number): Promise<void> {
    if (this.committed >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiters.push({ n, resolve });
      void this.exited.then((code) => reject(new Error(`writer exited (${code}) at ${this.committed}: ${this.stderr}`)));
    });
  }

  /** Stops after the statement in flight; resolves with the number of rows committed. */
  async stop(): Promise<number> {
    if (!this.stopping) {
      this.stopping = true;
      const inFlight = this.committed + 1;
      // The statement in flight is either acknowledged or the client dies with its error.
      await Promise.race([this.reached(inFlight).catch(() => {}), this.exited]);
      this.child.stdin!.end();
      await this.exited;
    }
    return this.committed;
  }
}

/** A directory repository with one source file and `extra` config (the `databases:` under test). */
export async function dbRepo(dir: string, keys: { identity: string; recipient: string }, extra: string): Promise<LocalRepo> {
  const r = await localRepo(dir, keys, extra);
  await writeFile(join(r.source, "a.txt"), "a\n");
  return r;
}

/**
 * Runs `config`'s backup (runJob, as the CLI and daemon do) once `writer` has `known` rows, and
 * stops the writer after. `started`/`during`: rows committed when the backup began and ended.
 */
export async function backupWhileWriting(
  writer: Writer,
  config: Config,
  r: LocalRepo,
  log: string[] = [],
  known = 500,
): Promise<{ started: number; during: number }> {
  try {
    await writer.reached(known);
    const started = writer.committed;
    const result = await runJob(config, { store: openFsStore(r.repo), log: (l) => log.push(l), configPath: r.config });
    if (!result.ok) throw result.error;
    return { started, during: writer.committed };
  } finally {
    await writer.stop();
  }
}
