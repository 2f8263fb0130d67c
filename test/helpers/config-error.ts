import { ConfigError } from "../../src/errors.js";

/** The ConfigError `run` throws; any other outcome fails the test. */
export function configError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("expected a ConfigError, nothing was thrown");
}
