import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const root = join(__dirname, '..', '..');

describe('the built package', () => {
  beforeAll(() => {
    if (!existsSync(join(root, 'dist', 'esm', 'research.js')) || !existsSync(join(root, 'dist', 'cjs', 'research.js'))) {
      execFileSync(process.execPath, ['tools/build.mjs'], { cwd: root, stdio: 'inherit' });
    }
  });

  // The root's surface, and the building blocks behind the /research subpath.
  const probe = "typeof m.loadModel + ' ' + typeof r.TextTokenizer + ' ' + typeof m.SafeEnsembleError + ' ' + r.liveSessionCount() + ' ' + typeof m.TextTokenizer";

  it('works with require()', () => {
    const out = execFileSync(process.execPath, ['-e', `const m = require('langchain-safe-ensemble'); const r = require('langchain-safe-ensemble/research'); console.log(${probe})`], { cwd: root }).toString().trim();
    expect(out).toBe('function function function 0 undefined');
  });

  it('works with import', () => {
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', `import * as m from 'langchain-safe-ensemble'; import * as r from 'langchain-safe-ensemble/research'; console.log(${probe})`], { cwd: root }).toString().trim();
    expect(out).toBe('function function function 0 undefined');
  });

  it('ships type declarations', () => {
    expect(existsSync(join(root, 'dist', 'types', 'index.d.ts'))).toBe(true);
    expect(existsSync(join(root, 'dist', 'types', 'research.d.ts'))).toBe(true);
  });
});

describe('the built package, type-checked by TypeScript consumers (module node16)', () => {
  it('a CommonJS (.cts) and an ES module (.mts) consumer compile, and the classes are assignable to core’s own', () => {
    if (!existsSync(join(root, 'dist', 'cjs', 'index.d.ts'))) execFileSync(process.execPath, ['tools/build.mjs'], { cwd: root, stdio: 'inherit' });
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    // Throws with tsc's diagnostics (e.g. TS1479, TS2322) when a consumer does not compile.
    execFileSync(process.execPath, [tsc, '-p', join(root, 'tests', 'package', 'consumers', 'tsconfig.json')], { cwd: root, stdio: 'pipe' });
    expect(existsSync(join(root, 'dist', 'cjs', 'package.json'))).toBe(true);
  });
});
