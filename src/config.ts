// The config now lives in config/ (issue 13 item 6). This re-export keeps the modules still
// importing "config.js" (daemon/, backup/, index.ts, edited on other branches) building until
// they point at config/index.js; then delete it.
export * from "./config/index.js";
