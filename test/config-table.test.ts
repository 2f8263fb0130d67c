import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { CONFIG_KEYS } from "../src/config/index.js";
import { envVariable } from "../src/config/env.js";
import { configTable, replaceConfigTable } from "../src/config/table.js";

// Issue 19: README's Configuration table is generated from CONFIG_KEYS (npm run gen:config-table),
// with each key's environment variable, and must not drift from it.

const README = readFileSync(new URL("../README.md", import.meta.url), "utf8");

describe("README configuration table", () => {
  it("is exactly what npm run gen:config-table writes", () => {
    expect(replaceConfigTable(README)).toBe(README);
  });

  it("has a row for every key, naming its variable", () => {
    const table = configTable();
    for (const { key } of CONFIG_KEYS) {
      const row = table.split("\n").find((line) => line.startsWith(`| \`${key}\` |`));
      expect(row, key).toBeDefined();
      expect(row, key).toContain(envVariable(key));
    }
  });

  it("refuses a README without the markers rather than appending", () => {
    expect(() => replaceConfigTable("# no table here\n")).toThrow(/config-table/);
  });
});
