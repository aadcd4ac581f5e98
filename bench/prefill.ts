/**
 * Peak memory and time of a prompt prefill (the first forward pass over a whole prompt, one
 * logits row kept), for 128 / 1,024 / 4,096-token prompts, on a random-weight decoder with the
 * Qwen3 vocabulary (151,669 logits columns) and no logits_to_keep input. Each measurement runs
 * in its own process, so peak RSS belongs to that prefill alone.
 *
 *   npm run bench:prefill
 *
 * With the graph as exported (`logitsToKeep: false`): "one run" feeds the whole prompt in one
 * onnxruntime run (a row per token comes back, as before the logits budget); "budgeted" uses the
 * default 64 MiB logits budget per run. "logits_to_keep added" is the default load, which gives
 * the graph that input (one row is computed). A second table measures the bundled qwen-adder,
 * whose graph was exported with a logits_to_keep input (its context is 1,024 tokens).
 */
import { execFileSync } from 'node:child_process';
import { bundledModels, loadModel } from '../src/index.js';
import { fixtureModel } from '../tests/helpers/fixtures.js';

const LENGTHS = [128, 1024, 4096];
const dir = fixtureModel({ tokenizer: 'qwen3', hiddenSize: 16, maxPositions: 8192 });

async function child(length: number, budget: number | undefined, model = dir, addKeep = false): Promise<void> {
  const lm = await loadModel(model, { threads: 1, logitsToKeep: addKeep, ...(budget ? { logitsBudgetBytes: budget } : {}) });
  const ids = Array.from({ length }, (_, i) => 100 + ((i * 7919) % 5000));
  const before = process.resourceUsage().maxRSS;
  const t0 = performance.now();
  await lm.forward(ids, { logits: 1 });
  const ms = performance.now() - t0;
  console.log(JSON.stringify({ length, ms, baselineMiB: before / 1024, peakMiB: process.resourceUsage().maxRSS / 1024 }));
  await lm.dispose();
}

if (process.argv[2] === '--child') {
  await child(Number(process.argv[3]), process.argv[4] === 'none' ? undefined : Number(process.argv[4]), process.argv[5] || dir, process.argv[6] === 'keep');
} else {
  console.log('| prompt tokens | exported, one run: peak RSS | time | exported, budgeted: peak RSS | time | logits_to_keep added: peak RSS | time |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|');
  for (const length of LENGTHS) {
    const measure = (budget: string, keep = '') => JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', 'bench/prefill.ts', '--child', String(length), budget, '', keep], { encoding: 'utf8' }).trim().split('\n').pop()!) as { ms: number; peakMiB: number };
    const whole = measure(String(Number.MAX_SAFE_INTEGER));
    const budgeted = measure('none');
    const kept = measure('none', 'keep');
    console.log(`| ${length} | ${whole.peakMiB.toFixed(0)} MiB | ${whole.ms.toFixed(0)} ms | ${budgeted.peakMiB.toFixed(0)} MiB | ${budgeted.ms.toFixed(0)} ms | ${kept.peakMiB.toFixed(0)} MiB | ${kept.ms.toFixed(0)} ms |`);
  }
  console.log('\n| bundled qwen-adder (logits_to_keep), prompt tokens | peak RSS | time |');
  console.log('|---:|---:|---:|');
  for (const length of [128, 1000]) {
    const r = JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', 'bench/prefill.ts', '--child', String(length), 'none', bundledModels()[0]!], { encoding: 'utf8' }).trim().split('\n').pop()!) as { ms: number; peakMiB: number };
    console.log(`| ${length} | ${r.peakMiB.toFixed(0)} MiB | ${r.ms.toFixed(0)} ms |`);
  }
}
