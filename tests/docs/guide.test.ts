import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import * as lib from '../../src/index';
import * as research from '../../src/research';
import { chatPair } from '../helpers/chatFixtures';

const GUIDE = join(__dirname, '..', '..', 'docs', 'langchain.md');

/** The ```ts blocks of a Markdown page, with the heading they sit under. */
function samples(markdown: string): Array<{ heading: string; code: string }> {
  const out: Array<{ heading: string; code: string }> = [];
  let heading = '';
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.startsWith('## ')) heading = line.slice(3);
    if (line.trim() === '```ts') {
      const body: string[] = [];
      for (i++; i < lines.length && lines[i]!.trim() !== '```'; i++) body.push(lines[i]!);
      out.push({ heading, code: body.join('\n') });
    }
  }
  return out;
}

/** Runs a sample as an async CommonJS module; the package name resolves to this checkout. */
async function run(code: string, log: (...args: unknown[]) => void): Promise<void> {
  const js = ts.transpileModule(code, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true } }).outputText;
  const localRequire = (name: string) => (name === 'langchain-safe-ensemble' ? lib : name === 'langchain-safe-ensemble/research' ? research : require(name));
  const fakeConsole = { ...console, log };
  const fakeProcess = { ...process, stdout: { write: (s: string) => log(s) } };
  const fn = new Function('require', 'exports', 'console', 'process', `return (async () => {\n${js}\n})();`);
  await fn(localRequire, {}, fakeConsole, fakeProcess);
}

describe('docs/langchain.md', () => {
  const blocks = samples(readFileSync(GUIDE, 'utf8'));

  it('has a sample for chains, streaming, agents, knobs and statistics', () => {
    expect(blocks.map((b) => b.heading)).toEqual(['A chain', 'Streaming', 'Chat, tools and agents', "SAFE's knobs as chain config", 'Reading the statistics']);
  });

  it.each(blocks.map((b) => [b.heading, b.code]))('runs the sample under "%s"', async (heading, code) => {
    const [a, b] = await chatPair();
    const withModels = (code as string).replace(/const models = \[[^\]]*\];/, `const models = [${JSON.stringify(a)}, ${JSON.stringify(b)}];`);
    expect(withModels).not.toBe(code);
    const printed: string[] = [];
    await run(withModels, (...args) => printed.push(args.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).join(' ')));
    const output = printed.join('\n');
    expect(output.length).toBeGreaterThan(0);
    expect(output).not.toMatch(/undefined$/m);
    const expected: Record<string, string[]> = {
      'A chain': ['2 + 3 = 5', 'Blue is a color'],
      Streaming: ['2 + 3 = 5', 'Blue is a color'],
      'Chat, tools and agents': ['Hello!', 'calculator', '12 * 7 = 84.'],
      "SAFE's knobs as chain config": ['2 + 3 = 5', 'consensusThreshold: must be a number from 0 to 1, got 1.5'],
      'Reading the statistics': ['ensembled (E/T', 'generatedTokens'],
    };
    for (const text of expected[heading as string] ?? []) expect(output).toContain(text);
  });
});
