import { Cron } from "croner";
import type { StreamSource } from "../archiver.js";
import { childSource } from "../child-source.js";
import type { DatabaseSettings } from "../settings.js";
import { redactor } from "./redact.js";
import { withoutEofMark } from "./redis-rdb.js";
import { sqliteSource } from "./sqlite.js";
import { mongodbCall, mysqlCall, postgresCall, redisCall, type ToolCall } from "./tools.js";

// A configured database as a StreamSource: its dump tool's stdout (or, for sqlite, a consistent
// copy of its file) becomes one file of the snapshot. A dump that fails fails the run with the
// tool's stderr, its secrets masked, through the same path as a failing command source.

export interface DatabaseSourceOptions {
  /** Receives each line the tool writes to stderr, prefixed `[database <name>] `, secrets masked. */
  log: (line: string) => void;
  /** The backup's work directory: where sqlite's consistent copy is made (see sqlite.ts). */
  spoolDir: string;
  /** The environment the tools run in (their passwords are added). Default: this process's. */
  env?: NodeJS.ProcessEnv;
}

export function databaseSource(db: DatabaseSettings, options: DatabaseSourceOptions): StreamSource {
  const source = dumpSource(db, options);
  return db.schedule === undefined ? source : { ...source, due: dueOn(db.schedule) };
}

/** Due once a time of the cron expression has come since the last dump. */
function dueOn(schedule: string): (last: Date, now: Date) => boolean {
  return (last, now) => {
    const cron = new Cron(schedule, { paused: true });
    const next = cron.nextRun(last);
    cron.stop();
    return next === null || next <= now;
  };
}

function dumpSource(db: DatabaseSettings, options: DatabaseSourceOptions): StreamSource {
  if (db.type === "sqlite") return sqliteSource(db, options.spoolDir);
  const env = options.env ?? process.env;
  const call = toolCall(db, env);
  const source = childSource({
    label: `database ${db.name}: ${call.argv[0]}`,
    logPrefix: `[database ${db.name}] `,
    path: db.path,
    argv: call.argv,
    env: { ...env, ...call.env },
    input: call.input,
    redact: redactor([db.password]),
    log: options.log,
  });
  if (db.type !== "redis") return source;
  return { ...source, open: (signal) => withoutEofMark(source.open(signal)) };
}

function toolCall(db: DatabaseSettings, env: NodeJS.ProcessEnv): ToolCall {
  switch (db.type) {
    case "postgres":
      return postgresCall(db);
    case "mysql":
    case "mariadb":
      return mysqlCall(db, env["PATH"]);
    case "redis":
      return redisCall(db);
    case "mongodb":
      return mongodbCall(db);
    case "sqlite":
      throw new Error("sqlite has no dump tool");
  }
}
