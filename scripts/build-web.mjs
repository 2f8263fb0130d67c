// Copies the page's non-TypeScript files next to the compiled modules (tsc -p tsconfig.web.json
// writes dist/serve/web/assets/*.js): the server serves dist/serve/web and nothing else, so the
// page needs no asset from node_modules or the internet at run time (docs/SERVE.md).
import { cpSync, mkdirSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const src = join(root, "src/serve/web");
const out = join(root, "dist/serve/web");
mkdirSync(join(out, "assets"), { recursive: true });
cpSync(join(src, "index.html"), join(out, "index.html"));
for (const name of readdirSync(join(src, "assets"))) {
  if (name.endsWith(".css") || name.endsWith(".svg")) cpSync(join(src, "assets", name), join(out, "assets", name));
}
const uplot = dirname(createRequire(import.meta.url).resolve("uplot/package.json"));
cpSync(join(uplot, "dist/uPlot.esm.js"), join(out, "assets/uPlot.esm.js"));
cpSync(join(uplot, "dist/uPlot.min.css"), join(out, "assets/uPlot.min.css"));
