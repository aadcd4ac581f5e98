/**
 * Start-up benchmark: time to the first token of `safe-ensemble "question"`, end to end (a new
 * process: Node start, imports, loading both bundled models, the first token), through `node
 * bin/safe-ensemble.cjs` and through `npx safe-ensemble`; and, in one process, the time from a
 * `stream()` call on an already loaded ensemble to its first text chunk (warm).
 *
 *   npm run build && npm run bench:startup -- [--runs 5]
 */
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { bundledModels, SafeEnsemble } from '../src/index.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' } } });
const runs = Number(values.runs);
const QUESTION = 'Mia has 37 marbles. She finds 25 more, then gives away 18. How many marbles does she have now?';
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

function endToEnd(command: string, args: string[]): number {
  const t0 = performance.now();
  execFileSync(command, [...args, QUESTION, '--max-new-tokens', '1'], { stdio: 'ignore' });
  return performance.now() - t0;
}

const node: number[] = [];
const npx: number[] = [];
for (let i = 0; i < runs; i++) {
  node.push(endToEnd(process.execPath, ['bin/safe-ensemble.cjs']));
  npx.push(endToEnd('npx', ['safe-ensemble']));
}

const ensemble = await SafeEnsemble.load({ models: bundledModels() });
const warm: number[] = [];
for (let i = 0; i <= runs; i++) {
  const t0 = performance.now();
  const stream = ensemble.stream(QUESTION, { maxNewTokens: 8 });
  for await (const chunk of stream) {
    if (chunk.type === 'text') {
      if (i > 0) warm.push(performance.now() - t0); // the first call warms the sessions up
      break;
    }
  }
}
await ensemble.dispose();

console.log(`| path | time to first token (median of ${runs}) |`);
console.log('|---|---:|');
console.log(`| new process: node bin/safe-ensemble.cjs | ${(median(node) / 1000).toFixed(2)} s |`);
console.log(`| new process: npx safe-ensemble | ${(median(npx) / 1000).toFixed(2)} s |`);
console.log(`| loaded ensemble: stream() to first chunk | ${median(warm).toFixed(1)} ms |`);
