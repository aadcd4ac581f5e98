/**
 * Engine benchmark: drafter-only vs every-token UniTE vs SAFE on generated models of equal
 * size with two different real tokenizers (Qwen3 byte-level BPE, Mistral sentencepiece).
 *
 *   npm run bench:engine -- [--hidden 256] [--layers 4] [--long 1024] [--short 128] [--rounds 6]
 *
 * Two pairs: one that agrees (both scripted to write the same text, with a real transformer
 * of the given size underneath, so SAFE's own overhead is visible) and one that disagrees
 * (scripted on different numbers). All rows of a pair run in the same process after one
 * warm-up each, in the orders of a Williams design over rounds (every row in every position and
 * after every other row equally often), with a full GC before each timed generation; speeds are
 * ratios to drafter-only from the same run, on the wall clock and in CPU time, with 95%
 * bootstrap intervals over rounds.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadModel, SafeEnsemble, type EnsembleOptions, type EnsembleResult } from '../src/index.js';
import { writeScriptedModel } from '../tools/fixtures/scriptedDecoder.js';
import { fullGc, speedRatio, timed, williamsOrders, type Measurement } from '../src/cli/benchMethod.js';

const { values } = parseArgs({
  options: {
    hidden: { type: 'string', default: '256' },
    layers: { type: 'string', default: '4' },
    heads: { type: 'string', default: '8' },
    'kv-heads': { type: 'string', default: '2' },
    long: { type: 'string', default: '1024' },
    short: { type: 'string', default: '128' },
    rounds: { type: 'string', default: '6' },
    threads: { type: 'string', default: '2' },
  },
});
const compute = { hiddenSize: Number(values.hidden), numLayers: Number(values.layers), numHeads: Number(values.heads), numKeyValueHeads: Number(values['kv-heads']) };
const longTokens = Number(values.long);
const shortTokens = Number(values.short);
const rounds = Number(values.rounds);

/**
 * A long step-by-step solution whose sentences never repeat (the scripts key on 6 tokens).
 * `variant` 1 changes the wording and one sum in three, so a model scripted on it disagrees
 * with one scripted on variant 0 several times per sentence.
 */
function solution(seed: number, variant: number): string {
  const names = ['Mia', 'Nora', 'Sofia', 'Liam', 'Xiomara', 'Bartholomew', 'Ingrid', 'Yusuf'];
  const objects = variant ? ['pebbles', 'postcards', 'acorns', 'drawings', 'clementines', 'journals'] : ['marbles', 'stickers', 'seashells', 'photographs', 'tangerines', 'notebooks'];
  let total = 10 + seed;
  const parts: string[] = [];
  for (let step = 1; parts.join('').length < 6 * longTokens; step++) {
    const add = ((step * 37 + seed * 11) % 90) + 5;
    const next = total + add + variant * (step % 3 === 0 ? 1 : 0);
    parts.push(` Step ${step}: ${names[step % names.length]} counts ${total} ${objects[step % objects.length]}, finds ${add} more, and now has ${total} + ${add} = ${next}.`);
    total = next;
  }
  return `${parts.join('')} The answer is ${total}.`;
}

const PROMPT = 'Q: Count carefully, step by step, and give the final number.\nA:';
const dir = mkdtempSync(join(tmpdir(), 'lse-bench-engine-'));
const raw: EnsembleOptions = { rawPrompt: true };

async function pair(name: string, offsetB: number) {
  const a = await writeScriptedModel(join(dir, `${name}-qwen`), { tokenizer: 'qwen3', scripts: [{ prompt: PROMPT, completion: solution(1, 0), rawPrompt: true }], compute, confidence: 0.9, maxPositions: 8192 });
  const b = await writeScriptedModel(join(dir, `${name}-mistral`), { tokenizer: 'llama2', scripts: [{ prompt: PROMPT, completion: solution(1, offsetB), rawPrompt: true }], compute, confidence: 0.9, maxPositions: 8192 });
  const threads = Number(values.threads);
  return new SafeEnsemble([await loadModel(a, { threads }), await loadModel(b, { threads })]);
}

interface Row {
  label: string;
  options: EnsembleOptions;
  results: EnsembleResult[];
  /** Wall and CPU time of each result, measured around the call. */
  times: Measurement[];
}

/** Wall-clock milliseconds per generated token over all rounds. */
const msPerToken = (row: Row) => row.times.reduce((t, m) => t + m.wallMs, 0) / Math.max(1, row.times.reduce((n, m) => n + m.tokens, 0));
const mean = (xs: number[]) => xs.reduce((x, y) => x + y, 0) / xs.length;

async function measure(ensemble: SafeEnsemble, rows: Row[]): Promise<void> {
  for (const row of rows) await ensemble.generate(PROMPT, { ...raw, ...row.options, maxNewTokens: 16 }); // warm-up
  const orders = williamsOrders(rows.length);
  for (let r = 0; r < rounds; r++) {
    for (const k of orders[r % orders.length]!) {
      const row = rows[k]!;
      fullGc();
      const t = await timed(() => ensemble.generate(PROMPT, { ...raw, ...row.options }));
      row.results.push(t.value);
      row.times.push({ problem: r, position: 0, tokens: t.value.stats.generatedTokens, ensembled: t.value.stats.ensembledTokens, wallMs: t.wallMs, cpuMs: t.cpuMs, correct: true, startsWithSpace: false, foreignName: false });
    }
  }
}

const interval = (r: { ratio: number; low: number; high: number }) => `${r.ratio.toFixed(2)}× (${r.low.toFixed(2)}–${r.high.toFixed(2)})`;

function report(title: string, rows: Row[]): void {
  console.log(`\n${title}`);
  console.log('| strategy | tokens | E/T % | ms/token | tokens/s | speed vs drafter-only (wall) | (CPU) | outside onnxruntime |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const row of rows) {
    const ms = msPerToken(row);
    const r0 = row.results[0]!;
    const outside = mean(row.results.map((r) => 1 - (r.stats.time.draftingMs + r.stats.time.verifyingMs) / r.stats.time.totalMs));
    const wall = speedRatio(row.times, rows[0]!.times, 'wallMs');
    const cpu = speedRatio(row.times, rows[0]!.times, 'cpuMs');
    console.log(`| ${row.label} | ${r0.stats.generatedTokens} | ${r0.stats.ensembleRatePct.toFixed(1)} | ${ms.toFixed(2)} | ${(1000 / ms).toFixed(1)} | ${interval(wall)} | ${interval(cpu)} | ${(outside * 100).toFixed(1)}% |`);
  }
}

console.log(`models: hidden ${compute.hiddenSize}, ${compute.numLayers} layers, ${compute.numHeads} heads / ${compute.numKeyValueHeads} KV heads; Qwen3 vocabulary (151,669) drafts, Mistral (32,000) verifies; ${rounds} rounds, threads ${values.threads}`);
for (const [name, offset] of [['agreeing pair (same script)', 0], ['disagreeing pair (different words and sums)', 1]] as const) {
  const ensemble = await pair(name.split(' ')[0]!, offset);
  const rows: Row[] = [
    { label: 'drafter-only', options: { strategy: 'single', maxNewTokens: shortTokens }, results: [], times: [] },
    { label: 'every-token UniTE', options: { strategy: 'every-token', maxNewTokens: shortTokens }, results: [], times: [] },
    { label: 'SAFE (UniTE)', options: { strategy: 'safe', maxNewTokens: shortTokens }, results: [], times: [] },
  ];
  await measure(ensemble, rows);
  report(`${name}, ${shortTokens} new tokens`, rows);
  if (offset === 0) {
    // Longer responses cost more per token for any model (attention over a longer context):
    // compare SAFE's growth with the drafter's own, and SAFE's time outside onnxruntime.
    const long: Row[] = [
      { label: 'drafter-only short', options: { strategy: 'single', maxNewTokens: shortTokens }, results: [], times: [] },
      { label: 'drafter-only long', options: { strategy: 'single', maxNewTokens: longTokens }, results: [], times: [] },
      { label: 'SAFE short', options: { maxNewTokens: shortTokens }, results: [], times: [] },
      { label: 'SAFE long', options: { maxNewTokens: longTokens }, results: [], times: [] },
    ];
    await measure(ensemble, long);
    const ms = (i: number) => msPerToken(long[i]!);
    const outsideMs = (i: number) =>
      mean(long[i]!.results.map((r) => (r.stats.time.totalMs - r.stats.time.draftingMs - r.stats.time.verifyingMs) / Math.max(1, r.stats.generatedTokens)));
    const n = (i: number) => long[i]!.results[0]!.stats.generatedTokens;
    console.log(`\nTime per token at ${n(0)} vs ${n(1)} generated tokens (agreeing pair):`);
    console.log('| | short | long | long / short |');
    console.log('|---|---:|---:|---:|');
    console.log(`| drafter-only, ms/token | ${ms(0).toFixed(2)} | ${ms(1).toFixed(2)} | ${(ms(1) / ms(0)).toFixed(2)} |`);
    console.log(`| SAFE, ms/token | ${ms(2).toFixed(2)} | ${ms(3).toFixed(2)} | ${(ms(3) / ms(2)).toFixed(2)} |`);
    console.log(`| SAFE outside onnxruntime, ms/token | ${outsideMs(2).toFixed(3)} | ${outsideMs(3).toFixed(3)} | ${(outsideMs(3) / outsideMs(2)).toFixed(2)} |`);
    console.log(`| SAFE / drafter-only | ${(ms(2) / ms(0)).toFixed(2)} | ${(ms(3) / ms(1)).toFixed(2)} | ${(ms(3) / ms(1) / (ms(2) / ms(0))).toFixed(2)} |`);
  }
  await ensemble.dispose();
}
rmSync(dir, { recursive: true, force: true });
