import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    setupFiles: ["test/setup/cache-dir.ts"],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // Crypto and compression tests are CPU-heavy; two cores are all this machine has.
    maxWorkers: 2,
    pool: "forks",
  },
});
