// Builds dist/esm (import), dist/cjs (require) and dist/types from src with tsc.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';

const tsc = (...args) => execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json', ...args], { stdio: 'inherit' });
rmSync('dist', { recursive: true, force: true });
tsc('--module', 'ESNext', '--moduleResolution', 'Bundler', '--outDir', 'dist/esm');
tsc('--module', 'CommonJS', '--moduleResolution', 'Node10', '--outDir', 'dist/cjs');
tsc('--declaration', '--emitDeclarationOnly', '--outDir', 'dist/types');
// Each output folder says how Node must read its .js files.
mkdirSync('dist/esm', { recursive: true });
writeFileSync('dist/esm/package.json', JSON.stringify({ type: 'module' }) + '\n');
writeFileSync('dist/cjs/package.json', JSON.stringify({ type: 'commonjs' }) + '\n');
// TypeScript reads a .d.ts as CommonJS or ESM by the nearest package.json's type, as Node does
// for .js: the same declarations next to the CommonJS build are the `require` condition's types,
// so a CommonJS consumer's imports of @langchain/core bind to core's .d.cts, like its own.
cpSync('dist/types', 'dist/cjs', { recursive: true, filter: (src) => !src.endsWith('.js') });
// ES modules have no __filename: their moduleFile reads import.meta.url instead.
writeFileSync(
  'dist/esm/runtime/moduleFile.js',
  "import { fileURLToPath } from 'node:url';\n/** The path of this build file (ESM build: from import.meta.url). */\nexport const moduleFile = fileURLToPath(import.meta.url);\n",
);
