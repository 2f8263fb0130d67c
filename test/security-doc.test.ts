import { existsSync, readFileSync } from "node:fs";
import { expect, it } from "vitest";

// docs/SECURITY.md backs each claim with a test, by file and name. Renaming or deleting a test
// must not leave the threat model pointing at nothing.

const doc = readFileSync(new URL("../docs/SECURITY.md", import.meta.url), "utf8").replace(/\s+/g, " ");

it("every test SECURITY.md cites exists, and every quoted test name is in that file", () => {
  const cited = [...doc.matchAll(/`(test\/[\w./-]+\.ts)`((?: › "[^"]+"(?:,? (?:and )?"[^"]+")*(?: and the [^-`]+)?)?)/g)];
  expect(cited.length).toBeGreaterThan(20);
  let checked = 0;
  for (const [, file, names] of cited) {
    const path = new URL(`../${file}`, import.meta.url);
    expect(existsSync(path), file).toBe(true);
    const source = readFileSync(path, "utf8").replace(/\s+/g, " ");
    for (const [, name] of (names ?? "").matchAll(/"([^"]+)"/g)) {
      // A long name may be cut with "…"; what is quoted must be its exact beginning.
      // "describe › it" names a test inside a describe: each part must be there.
      for (const part of name!.replace(/…$/, "").split(" › ")) {
        expect(source.includes(part), `${file}: "${part}"`).toBe(true);
        checked++;
      }
    }
  }
  expect(checked).toBeGreaterThan(30);
});
