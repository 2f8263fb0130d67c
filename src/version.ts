import { readFileSync } from "node:fs";

// Read from package.json at run time so a release never carries a stale constant; this file
// sits one level below the package root both in src/ and in dist/.
export const VERSION: string = (
  JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }
).version;
