import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll } from "vitest";

// Commands that read snapshots keep decrypted databases in a cache under $XDG_CACHE_HOME. Each
// test file gets its own, removed when the file ends: no test writes into the developer's
// ~/.cache, and no test file sees another's entries. (test/helpers/cli.ts passes XDG_* on.)
const dir = mkdtempSync(join(tmpdir(), "vaultik-xdg-cache-"));
process.env["XDG_CACHE_HOME"] = dir;
afterAll(() => rmSync(dir, { recursive: true, force: true }));
