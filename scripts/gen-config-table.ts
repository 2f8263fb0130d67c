// Rewrites README.md's Configuration table from src/config/keys.ts (issue 19):
// `npm run gen:config-table`; test/config-table.test.ts fails when the two differ.
import { readFileSync } from "node:fs";
import { replaceConfigTable } from "../src/config/table.js";
import { writeFileAtomicSync } from "../src/util/fsio.js";

const readme = new URL("../README.md", import.meta.url);
const before = readFileSync(readme, "utf8");
const after = replaceConfigTable(before);
if (after !== before) writeFileAtomicSync(readme.pathname, after, 0o644);
process.stdout.write(after === before ? "README.md: configuration table already up to date\n" : "README.md: configuration table rewritten\n");
