#!/usr/bin/env node
// Thin launcher: the CLI lives in dist/ (built by `npm run build`).

// File reads, stats, zstd and SQLite-free I/O all share libuv's pool, whose default of 4 threads
// leaves the disk idle while JavaScript works. Must be set before the pool's first use.
process.env.UV_THREADPOOL_SIZE ??= "8";
// The AWS SDK warns on stderr about Node versions it will drop in 2027; under --cron every
// line on stderr is a mail to the operator, so the warning is left to the release notes.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

// The bench's main-thread CPU figure (issue 17); a no-op unless VAULTIK_THREAD_TIMES is set.
// Here rather than in main(), which tests also call inside their own process.
const { recordThreadTimesOnExit } = await import("../dist/util/thread-times.js");
recordThreadTimesOnExit();

const { main } = await import("../dist/cli/main.js");
process.exitCode = await main(process.argv);
