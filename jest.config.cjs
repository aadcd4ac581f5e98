/** Settings shared by both projects. */
const base = {
  rootDir: __dirname,
  testEnvironment: '<rootDir>/tests/setup/ortEnvironment.cjs',
  roots: ['<rootDir>/tests'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.test.json' }],
  },
  // Sources import with explicit .js extensions (needed by the ESM build); map them to .ts.
  // The package name resolves to the sources, so examples are tested as they are written.
  testTimeout: 120000,
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1', '^langchain-safe-ensemble$': '<rootDir>/src/index.ts', '^langchain-safe-ensemble/research$': '<rootDir>/src/research.ts' },
};

/**
 * The suite runs twice: with every model in a worker thread (the default), and again with
 * sessions inline on the test's thread, for every test that runs models in this process.
 * Both must give the same outputs (the tests pin them). `--selectProjects worker` runs one.
 * @type {import('jest').Config}
 */
module.exports = {
  testTimeout: 120000,
  maxWorkers: 2,
  projects: [
    { ...base, displayName: 'worker', testMatch: ['**/*.test.ts'] },
    {
      ...base,
      displayName: 'inline',
      setupFiles: ['<rootDir>/tests/setup/inlineExecution.cjs'],
      testMatch: ['<rootDir>/tests/{member,runtime,ensemble,reliability,langchain,demo,docs}/**/*.test.ts'],
    },
  ],
};
