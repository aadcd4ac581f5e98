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
