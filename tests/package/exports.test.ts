import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const root = join(__dirname, '..', '..');

describe('the built package', () => {
  beforeAll(() => {
    if (!existsSync(join(root, 'dist', 'esm', 'index.js')) || !existsSync(join(root, 'dist', 'cjs', 'index.js'))) {
      execFileSync(process.execPath, ['tools/build.mjs'], { cwd: root, stdio: 'inherit' });
    }
  });

  const probe = "typeof m.loadModel + ' ' + typeof m.TextTokenizer + ' ' + typeof m.SafeEnsembleError + ' ' + m.liveSessionCount()";

  it('works with require()', () => {
    const out = execFileSync(process.execPath, ['-e', `const m = require('langchain-safe-ensemble'); console.log(${probe})`], { cwd: root }).toString().trim();
    expect(out).toBe('function function function 0');
  });

  it('works with import', () => {
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', `import * as m from 'langchain-safe-ensemble'; console.log(${probe})`], { cwd: root }).toString().trim();
    expect(out).toBe('function function function 0');
  });

  it('ships type declarations', () => {
    expect(existsSync(join(root, 'dist', 'types', 'index.d.ts'))).toBe(true);
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
