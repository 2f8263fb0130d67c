import { createRequire } from "node:module";

// zstd-napi is not a dependency of vaultik: the zstd benchmarks load it from a directory given
// on the command line (installed outside the repository), to compare it with @mongodb-js/zstd.

export interface ZstdNapi {
  Compressor: new () => { setParameters(p: object): void; compress(b: Uint8Array): Buffer };
  compress(b: Uint8Array, p: object): Buffer;
}

/** zstd-napi from `dir` (…/node_modules/zstd-napi), or undefined when no directory is given. */
export function loadZstdNapi(dir: string | undefined): ZstdNapi | undefined {
  return dir ? (createRequire(import.meta.url)(dir) as ZstdNapi) : undefined;
}
