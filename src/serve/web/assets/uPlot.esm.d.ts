// The build copies uplot's ES module next to ours (scripts/build-web.mjs); its types are the package's.
export { default } from "uplot";
