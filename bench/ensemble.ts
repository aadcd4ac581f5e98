/**
 * Engine benchmark: drafter-only vs every-token UniTE vs SAFE on generated models with two real
 * tokenizers (Qwen3 byte-level BPE, 151,669 ids; Mistral sentencepiece, 32,000 ids), each run
 * with its sessions inline and in worker threads, side by side in one process.
 *
 *   npm run bench:engine -- [--shape tiny|smol] [--rounds 3] [--short 128] [--long 1024] [--look-ahead]
 *
 * `--shape smol` is a real small-LLM shape (SmolLM2-135M-like: 30 layers, hidden 576, 9 heads /
 * 3 KV heads, SwiGLU 1536); `tiny` (default) is hidden 256, 4 layers, for quick runs. Each
 * member gets one onnxruntime thread (one core per member, as the paper's one device per model);
 * drafter-only also runs with every core given to it (equal total resources).
 *
 * Two pairs: one that agrees (both scripted on the same text, with a random-weight transformer
 * of the shape underneath, so the cost is a real model's) and one that disagrees (scripted on
 * different words and sums), each with either model drafting. The scripts are keyed on the last
 * 24 bytes of text, not on token ids: each model continues the committed text however it was
 * tokenized (the other member's tokens after an ensemble point), as a model that learnt it would. All rows of a pair and order run
 * after one warm-up each, in the orders of a Williams design over rounds, with a full GC before
 * each timed generation. Speeds are ratios to drafter-only in the same execution mode, on the
 * wall clock and in process CPU time (all threads), with 95% bootstrap intervals over rounds.
 * The event loop's delay (10 ms resolution) is sampled during every timed generation.
 * `--look-ahead` adds, in worker mode, SAFE with look-ahead scoring (greedy) and sampled at
 * T = 0.7 with first-token and look-ahead scoring, the sampled rows as ratios to the drafter
 * sampling alone.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { loadModel, SafeEnsemble, type CausalLM, type EnsembleOptions, type EnsembleResult } from '../src/index.js';
import { type ExecutionMode } from '../src/research.js';
import { writeScriptedModel } from '../tools/fixtures/scriptedDecoder.js';
import { fullGc, speedRatio, timed, williamsOrders, type Measurement } from '../src/cli/benchMethod.js';

const SHAPES = {
  tiny: { hiddenSize: 256, numLayers: 4, numHeads: 8, numKeyValueHeads: 2 },
  smol: { hiddenSize: 576, numLayers: 30, numHeads: 9, numKeyValueHeads: 3, intermediateSize: 1536, gatedMlp: true },
} as const;

const { values } = parseArgs({
  options: {
    shape: { type: 'string', default: 'tiny' },
    long: { type: 'string', default: '1024' },
    short: { type: 'string', default: '128' },
    rounds: { type: 'string', default: '3' },
    pairs: { type: 'string', default: 'agreeing,disagreeing' },
    'look-ahead': { type: 'boolean', default: false },
  },
});
if (!(values.shape! in SHAPES)) throw new Error(`--shape must be one of ${Object.keys(SHAPES).join(', ')}`);
const compute = SHAPES[values.shape as keyof typeof SHAPES];
const longTokens = Number(values.long);
const shortTokens = Number(values.short);
const rounds = Number(values.rounds);
const cores = availableParallelism();

/**
 * A long step-by-step solution whose 24-byte windows never repeat with different continuations
 * (the scripts key on them).
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
  // The response starts a line: a leading space would be a sentencepiece member's dummy prefix.
  return `${parts.join('').trimStart()} The answer is ${total}.`;
}

const PROMPT = 'Q: Count carefully, step by step, and give the final number.\nA:\n';
const dir = mkdtempSync(join(tmpdir(), 'lse-bench-engine-'));
const raw: EnsembleOptions = { rawPrompt: true };

/** The two scripted models of a pair, written once. */
async function writePair(name: string, variant: number): Promise<[string, string]> {
  const common = { scripts: [] as never[], compute, confidence: 0.9, maxPositions: 8192, context: 'text' as const };
  const qwen = await writeScriptedModel(join(dir, `${name}-qwen`), { ...common, tokenizer: 'qwen3', scripts: [{ prompt: PROMPT, completion: solution(1, 0), rawPrompt: true }] });
  const mistral = await writeScriptedModel(join(dir, `${name}-mistral`), { ...common, tokenizer: 'llama2', scripts: [{ prompt: PROMPT, completion: solution(1, variant), rawPrompt: true }] });
  return [qwen, mistral];
}

interface Row {
  label: string;
  ensemble: SafeEnsemble;
  options: EnsembleOptions;
  results: EnsembleResult[];
  /** Wall and CPU time of each result, measured around the call. */
  times: Measurement[];
  /** Event-loop delay during the timed generations: p99 and max over all of them (ms). */
  lag: { p99: number; max: number };
  /** Garbage collection on the main thread during the timed generations: pauses and their total time. */
  gc: { count: number; ms: number };
}

/** Main-thread GC pauses while `fn` runs (workers collect in heaps of their own). */
async function withGcCount<T>(fn: () => Promise<T>, into: { count: number; ms: number }): Promise<T> {
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      into.count++;
      into.ms += e.duration;
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  try {
    return await fn();
  } finally {
    // Entries are delivered asynchronously: let the last ones arrive.
    await new Promise((resolve) => setImmediate(resolve));
    observer.disconnect();
  }
}

/** Timer period of the event-loop delay monitor. */
const LAG_RESOLUTION_MS = 10;

const row = (label: string, ensemble: SafeEnsemble, options: EnsembleOptions): Row => ({ label, ensemble, options, results: [], times: [], lag: { p99: -Infinity, max: -Infinity }, gc: { count: 0, ms: 0 } });

/** Wall-clock milliseconds per generated token over all rounds. */
const msPerToken = (r: Row) => r.times.reduce((t, m) => t + m.wallMs, 0) / Math.max(1, r.times.reduce((n, m) => n + m.tokens, 0));
const gcPer100 = (r: Row) => {
  const tokens = Math.max(1, r.times.reduce((n, m) => n + m.tokens, 0)) / 100;
  return `${(r.gc.count / tokens).toFixed(1)} / ${(r.gc.ms / tokens).toFixed(1)}`;
};
const mean = (xs: number[]) => xs.reduce((x, y) => x + y, 0) / xs.length;

async function measure(rows: Row[]): Promise<void> {
  for (const r of rows) await r.ensemble.generate(PROMPT, { ...raw, ...r.options, maxNewTokens: 16 }); // warm-up
  const orders = williamsOrders(rows.length);
  for (let round = 0; round < rounds; round++) {
    for (const k of orders[round % orders.length]!) {
      const r = rows[k]!;
      fullGc();
      const delay = monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS });
      delay.enable();
      const t = await withGcCount(() => timed(() => r.ensemble.generate(PROMPT, { ...raw, ...r.options })), r.gc);
      delay.disable();
      // The histogram holds the time between timer turns: the resolution itself is not lag.
      r.lag.p99 = Math.max(r.lag.p99, delay.percentile(99) / 1e6 - LAG_RESOLUTION_MS);
      r.lag.max = Math.max(r.lag.max, delay.max / 1e6 - LAG_RESOLUTION_MS);
      r.results.push(t.value);
      r.times.push({ problem: round, position: 0, tokens: t.value.stats.generatedTokens, ensembled: t.value.stats.ensembledTokens, wallMs: t.wallMs, cpuMs: t.cpuMs, correct: true, startsWithSpace: false, foreignName: false });
    }
  }
}

const interval = (r: { ratio: number; low: number; high: number }) => `${r.ratio.toFixed(2)}× (${r.low.toFixed(2)}–${r.high.toFixed(2)})`;

function report(title: string, rows: Row[], reference: (r: Row) => Row): void {
  console.log(`\n${title}`);
  console.log('| strategy | tokens | E/T % | ms/token | speed vs drafter-only (wall) | (CPU) | event-loop lag p99 / max (ms, worst generation) | main-thread GC: pauses / ms per 100 tokens |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    const r0 = r.results[0]!;
    const ref = reference(r);
    const wall = speedRatio(r.times, ref.times, 'wallMs');
    const cpu = speedRatio(r.times, ref.times, 'cpuMs');
    console.log(`| ${r.label} | ${r0.stats.generatedTokens} | ${r0.stats.ensembleRatePct.toFixed(1)} | ${msPerToken(r).toFixed(2)} | ${interval(wall)} | ${interval(cpu)} | ${r.lag.p99.toFixed(1)} / ${r.lag.max.toFixed(1)} | ${gcPer100(r)} |`);
  }
}

/** Loads a pair in one execution mode, one onnxruntime thread per member. */
async function loadPair(paths: [string, string], execution: ExecutionMode): Promise<CausalLM[]> {
  return Promise.all(paths.map((p) => loadModel(p, { execution, threads: 1 })));
}

/**
 * The machine's own floor for event-loop lag: the main thread idle while `busy` other threads
 * spin (as busy onnxruntime threads would). With as many busy threads as cores, the scheduler
 * alone delays the main thread's timers.
 */
async function lagFloor(busy: number): Promise<{ p99: number; max: number }> {
  const spinners = Array.from({ length: busy }, () => new Worker('const end = Date.now() + 4000; while (Date.now() < end) {}', { eval: true }));
  await new Promise((resolve) => setTimeout(resolve, 200));
  const delay = monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS });
  delay.enable();
  await new Promise((resolve) => setTimeout(resolve, 3000));
  delay.disable();
  await Promise.all(spinners.map((w) => w.terminate()));
  return { p99: delay.percentile(99) / 1e6 - LAG_RESOLUTION_MS, max: delay.max / 1e6 - LAG_RESOLUTION_MS };
}

console.log(`shape ${values.shape}: hidden ${compute.hiddenSize}, ${compute.numLayers} layers, ${compute.numHeads} heads / ${compute.numKeyValueHeads} KV heads${'intermediateSize' in compute ? `, SwiGLU ${compute.intermediateSize}` : ''}; ${rounds} rounds; ${cores} cores; Node ${process.version}`);
for (const busy of [0, 1, 2]) {
  const floor = await lagFloor(busy);
  console.log(`event-loop lag of an idle main thread with ${busy} busy thread(s) on this machine: p99 ${floor.p99.toFixed(1)} ms, max ${floor.max.toFixed(1)} ms`);
}
const pairNames = values.pairs!.split(',');
for (const [name, variant] of [['agreeing', 0], ['disagreeing', 1]] as const) {
  if (!pairNames.includes(name)) continue;
  const paths = await writePair(name, variant);
  const sets = { inline: await loadPair(paths, 'inline'), worker: await loadPair(paths, 'worker') };
  for (const drafter of [0, 1]) {
    const drafterName = drafter === 0 ? 'Qwen-vocab' : 'Mistral-vocab';
    const ensembles = { inline: new SafeEnsemble(sets.inline, { drafter }), worker: new SafeEnsemble(sets.worker, { drafter }) };
    // Drafter alone with every core (the ensemble's total resources).
    const allCores = new SafeEnsemble([await loadModel(paths[drafter]!, { execution: 'worker', threads: cores })]);
    const rows: Row[] = [];
    for (const mode of ['inline', 'worker'] as const) {
      rows.push(row(`drafter-only (${mode})`, ensembles[mode], { strategy: 'single', maxNewTokens: shortTokens }));
      rows.push(row(`every-token UniTE (${mode})`, ensembles[mode], { strategy: 'every-token', maxNewTokens: shortTokens }));
      rows.push(row(`SAFE (${mode})`, ensembles[mode], { strategy: 'safe', maxNewTokens: shortTokens }));
    }
    rows.push(row(`drafter-only, ${cores} threads (worker)`, allCores, { strategy: 'single', maxNewTokens: shortTokens }));
    const sampled = { temperature: 0.7, seed: 1, maxNewTokens: shortTokens };
    if (values['look-ahead']) {
      rows.push(row('SAFE, look-ahead (worker)', ensembles.worker, { strategy: 'safe', unionScoring: 'look-ahead', maxNewTokens: shortTokens }));
      rows.push(row('drafter-only, sampled T 0.7 (worker)', ensembles.worker, { strategy: 'single', ...sampled }));
      rows.push(row('SAFE, sampled T 0.7, first-token (worker)', ensembles.worker, { strategy: 'safe', unionScoring: 'first-token', ...sampled }));
      rows.push(row('SAFE, sampled T 0.7, look-ahead (worker)', ensembles.worker, { strategy: 'safe', unionScoring: 'look-ahead', ...sampled }));
    }
    await measure(rows);
    const sameModeDrafter = (r: Row) => (r.label.includes('sampled') ? rows[8]! : r.label.includes('(inline)') ? rows[0]! : rows[3]!);
    report(`${name} pair, ${drafterName} model drafts, ${shortTokens} new tokens; ratios to drafter-only in the same mode (1 thread)`, rows, sameModeDrafter);
    for (const r of rows) {
      const la = r.results[0]!.stats.lookAhead;
      if (la) console.log(`${r.label}: ${la.points} look-ahead points, ${(la.passes / Math.max(1, la.points)).toFixed(2)} extra passes per point${la.bounded ? `, ${la.bounded} settled by the top-k bound` : ''}`);
    }
    const safeWorker = rows[5]!;
    const vsAllCores = speedRatio(safeWorker.times, rows[6]!.times, 'wallMs');
    console.log(`SAFE (worker) vs drafter-only with ${cores} threads: ${interval(vsAllCores)} wall`);
    const p = safeWorker.results.map((r) => r.stats.pipeline!);
    console.log(`SAFE (worker) drafting ahead: ${mean(p.map((x) => x.draftedAhead)).toFixed(1)} tokens per generation, ${mean(p.map((x) => x.discarded)).toFixed(1)} dropped`);
    await allCores.dispose();
  }
  if (name === 'agreeing') {
    // Longer responses cost more per token for any model (attention over a longer context):
    // compare SAFE's growth with the drafter's own (worker mode, Qwen-vocab model drafts).
    const ensemble = new SafeEnsemble(sets.worker, { drafter: 0 });
    const long: Row[] = [
      row('drafter-only short', ensemble, { strategy: 'single', maxNewTokens: shortTokens }),
      row('drafter-only long', ensemble, { strategy: 'single', maxNewTokens: longTokens }),
      row('SAFE short', ensemble, { maxNewTokens: shortTokens }),
      row('SAFE long', ensemble, { maxNewTokens: longTokens }),
    ];
    await measure(long);
    const ms = (i: number) => msPerToken(long[i]!);
    const n = (i: number) => long[i]!.results[0]!.stats.generatedTokens;
    console.log(`\nTime per token at ${n(0)} vs ${n(1)} generated tokens (agreeing pair, worker mode, Qwen-vocab model drafts):`);
    console.log('| | short | long | long / short |');
    console.log('|---|---:|---:|---:|');
    console.log(`| drafter-only, ms/token | ${ms(0).toFixed(2)} | ${ms(1).toFixed(2)} | ${(ms(1) / ms(0)).toFixed(2)} |`);
    console.log(`| SAFE, ms/token | ${ms(2).toFixed(2)} | ${ms(3).toFixed(2)} | ${(ms(3) / ms(2)).toFixed(2)} |`);
    console.log(`| SAFE / drafter-only | ${(ms(2) / ms(0)).toFixed(2)} | ${(ms(3) / ms(1)).toFixed(2)} | ${(ms(3) / ms(1) / (ms(2) / ms(0))).toFixed(2)} |`);
  }
  await Promise.all([...sets.inline, ...sets.worker].map((m) => m.dispose()));
}
rmSync(dir, { recursive: true, force: true });
