/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: '<rootDir>/tests/setup/ortEnvironment.cjs',
  roots: ['<rootDir>/tests'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.test.json' }],
  },
  // Sources import with explicit .js extensions (needed by the ESM build); map them to .ts.
  // The package name resolves to the sources, so examples are tested as they are written.
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1', '^langchain-safe-ensemble$': '<rootDir>/src/index.ts' },
  testTimeout: 120000,
  maxWorkers: 2,
};
