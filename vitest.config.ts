import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Temporal's native worker does not run in worker threads; each test file gets its own process.
    pool: 'forks',
    globalSetup: ['test/global-setup.ts'],
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Two cores: files run one or two at a time against the shared stack.
    maxWorkers: 2,
  },
});
