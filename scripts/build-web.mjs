// Copies the page's non-TypeScript files next to the compiled modules (tsc -p tsconfig.web.json
// writes dist/serve/web/assets/*.js): the server serves dist/serve/web and nothing else, so the
// page needs no asset from node_modules or the internet at run time (docs/SERVE.md).
import { cpSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const src = join(root, "src/serve/web");
const out = join(root, "dist/serve/web");
mkdirSync(join(out, "assets"), { recursive: true });
for (const name of readdirSync(join(src, "assets"))) {
  if (name.endsWith(".css") || name.endsWith(".svg")) cpSync(join(src, "assets", name), join(out, "assets", name));
}
const uplot = dirname(createRequire(import.meta.url).resolve("uplot/package.json"));
cpSync(join(uplot, "dist/uPlot.esm.js"), join(out, "assets/uPlot.esm.js"));
cpSync(join(uplot, "dist/uPlot.min.css"), join(out, "assets/uPlot.min.css"));

// Every module preloaded from index.html: the browser fetches them in parallel instead of
// discovering them import by import (four round trips deep, from main.js down to uPlot).
const modules = readdirSync(join(out, "assets")).filter((n) => n.endsWith(".js")).sort();
const preload = modules.map((n) => `<link rel="modulepreload" href="/assets/${n}">`).join("\n  ");
const html = readFileSync(join(src, "index.html"), "utf8");
if (!html.includes("<!-- modulepreload -->")) throw new Error("src/serve/web/index.html lost its <!-- modulepreload --> marker");
writeFileSync(join(out, "index.html"), html.replace("<!-- modulepreload -->", preload));
