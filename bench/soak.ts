/**
 * Soak test: many generations on the bundled models, alternating the engine, SafeEnsembleLLM
 * and SafeEnsembleChatModel (plain, streamed, and aborted calls), measuring memory after a
 * warm-up and at the end. Fails (exit 1) when RSS or heap grew by 5% or more, or when a native
 * session outlives dispose().
 *
 *   npm run soak -- [--generations 1000] [--warmup 100]
 */
import { HumanMessage } from '@langchain/core/messages';
import { parseArgs } from 'node:util';
import { SafeEnsemble, SafeEnsembleChatModel, SafeEnsembleLLM } from '../src/index.js';
import { liveSessionCount } from '../src/research.js';
import { bundledModels } from '../src/demo/models.js';
import { problemSet } from '../src/demo/wordProblems.js';

const { values } = parseArgs({ options: { generations: { type: 'string', default: '1000' }, warmup: { type: 'string', default: '100' } } });
const total = Number(values.generations);
const warmup = Number(values.warmup);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) console.warn('soak: run with node --expose-gc (npm run soak does) for exact heap figures');

const ensemble = await SafeEnsemble.load({ models: bundledModels(), maxNewTokens: 120 });
const llm = new SafeEnsembleLLM({ ensemble, maxNewTokens: 120 });
const chat = new SafeEnsembleChatModel({ ensemble, maxNewTokens: 120 });
const problems = problemSet(100);

function memory(): { rss: number; heap: number } {
  for (let i = 0; i < 3; i++) gc?.();
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed };
}

async function one(i: number): Promise<number> {
  const question = problems[i % problems.length]!.question;
  switch (i % 5) {
    case 0:
      return (await ensemble.generate(question)).stats.generatedTokens;
    case 1: {
      let n = 0;
      for await (const chunk of ensemble.stream(question, { strategy: i % 2 ? 'every-token' : 'safe' })) if (chunk.type === 'result') n = chunk.result.stats.generatedTokens;
      return n;
    }
    case 2:
      return (await llm.invoke(question)).length > 0 ? 1 : 0;
    case 3:
      return String((await chat.invoke([new HumanMessage(question)])).content).length > 0 ? 1 : 0;
    default: {
      // An aborted call: the signal fires after a few milliseconds.
      const r = await ensemble.generate(question, { signal: AbortSignal.timeout(5) });
      return r.stats.generatedTokens;
    }
  }
}

const started = Date.now();
let tokens = 0;
let before = memory();
for (let i = 0; i < total; i++) {
  tokens += await one(i);
  if (i + 1 === warmup) before = memory();
  if ((i + 1) % 100 === 0) {
    const m = process.memoryUsage();
    console.error(`soak: ${i + 1}/${total} generations, rss ${(m.rss / 2 ** 20).toFixed(1)} MiB, heap ${(m.heapUsed / 2 ** 20).toFixed(1)} MiB, ${((Date.now() - started) / 1000).toFixed(0)} s`);
  }
}
const after = memory();
const sessions = liveSessionCount();
await ensemble.dispose();
const leaked = liveSessionCount();
const growth = (a: number, b: number) => (100 * (b - a)) / a;
const rssGrowth = growth(before.rss, after.rss);
const heapGrowth = growth(before.heap, after.heap);
const mib = (x: number) => `${(x / 2 ** 20).toFixed(1)} MiB`;
console.log(`soak: ${total} generations (${tokens} tokens from the engine calls) in ${((Date.now() - started) / 1000).toFixed(0)} s on the bundled models`);
console.log(`  after ${warmup} warm-up generations: rss ${mib(before.rss)}, heap ${mib(before.heap)}`);
console.log(`  after ${total}: rss ${mib(after.rss)} (${rssGrowth >= 0 ? '+' : ''}${rssGrowth.toFixed(2)}%), heap ${mib(after.heap)} (${heapGrowth >= 0 ? '+' : ''}${heapGrowth.toFixed(2)}%)`);
console.log(`  native sessions: ${sessions} while running, ${leaked} after dispose()`);
const ok = rssGrowth < 5 && heapGrowth < 5 && leaked === 0;
console.log(ok ? 'soak: PASS (growth < 5%, no session left)' : 'soak: FAIL');
process.exit(ok ? 0 : 1);
