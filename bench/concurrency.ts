/**
 * Many generations at once: total tokens per second and per-request latency with 1, 2, 4, 8
 * and 16 generations running concurrently on one ensemble (SAFE, greedy), for
 *  (a) the bundled pair (local, worker threads),
 *  (b) two random-weight models of a real small-LLM shape (SmolLM2-135M-like: 30 layers, hidden
 *      576, 9 heads / 3 KV heads, SwiGLU 1536; the Qwen3 and Mistral vocabularies), local,
 *  (b′) the same shape as a pair that mostly agrees (a model and a slightly perturbed copy, one
 *      vocabulary): E/T as trained models have it, where (b) is SAFE's worst case,
 *  (c) the bundled pair served by loopback SGLang servers (tools/fixtures/engineServer.ts) that
 *      model a GPU engine's continuous batching: every request holds one of 16 batch slots for
 *      `--step-ms` per forward step it needs, requests in the batch overlapping (real inference
 *      on this CPU gives the numbers; the step time is the model, not a measurement).
 * Each level is compared with the same requests run one after another, just before, in the
 * same process; every request's text is checked against its text alone. "First token" is the
 * time from a call to its first text chunk.
 *
 *   npm run bench:concurrency -- [--levels 1,2,4,8,16] [--tokens 24] [--step-ms 20] [--setups bundled,smol,smol-agreeing,served]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadModel, loadRemoteModel, SafeEnsemble, type CausalLM, type EnsembleMember } from '../src/index.js';
import { bundledModels } from '../src/demo/models.js';
import { problemSet } from '../src/demo/wordProblems.js';
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import type { EngineServerOptions } from '../tools/fixtures/engineServer.js';
import { writeFixtureModel } from '../tools/fixtures/tinyDecoder.js';

const { values } = parseArgs({
  options: {
    levels: { type: 'string', default: '1,2,4,8,16' },
    tokens: { type: 'string', default: '24' },
    'step-ms': { type: 'string', default: '20' },
    setups: { type: 'string', default: 'bundled,smol,smol-agreeing,served' },
  },
});
const levels = values.levels!.split(',').map(Number);
const maxNewTokens = Number(values.tokens);
const stepMs = Number(values['step-ms']);
const most = Math.max(...levels);
const questions = problemSet(most).map((p) => p.question);
/** Noise on the near copy's weights, relative to each weight's range (setup b′). */
const PERTURBATION = 0.02;
const SMOL = { hiddenSize: 576, numLayers: 30, numHeads: 9, numKeyValueHeads: 3, intermediateSize: 1536, gatedMlp: true, maxPositions: 2048 };

interface Level {
  tokens: number;
  wallMs: number;
  meanLatencyMs: number;
  meanFirstTokenMs: number;
  sameText: boolean;
  /** Ensembled ÷ generated tokens, in percent (the paper's E/T). */
  ensembledPct: number;
}

/** Runs `count` requests, `concurrent` at a time as separate callers would (all started at once when equal). */
async function runLevel(ensemble: SafeEnsemble, count: number, concurrent: number, alone: string[] | null): Promise<{ level: Level; texts: string[] }> {
  const texts: string[] = new Array(count);
  const latencies: number[] = [];
  const firsts: number[] = [];
  let tokens = 0;
  let ensembled = 0;
  const t0 = performance.now();
  let next = 0;
  async function caller(): Promise<void> {
    while (next < count) {
      const i = next++;
      const start = performance.now();
      let first = -1;
      let text = '';
      for await (const chunk of ensemble.stream(questions[i]!, { maxNewTokens })) {
        if (chunk.type === 'text') {
          if (first < 0) first = performance.now() - start;
          text += chunk.text;
        } else {
          tokens += chunk.result.stats.generatedTokens;
          ensembled += chunk.result.stats.ensembledTokens;
        }
      }
      latencies.push(performance.now() - start);
      firsts.push(first < 0 ? performance.now() - start : first);
      texts[i] = text;
    }
  }
  await Promise.all(Array.from({ length: concurrent }, () => caller()));
  const wallMs = performance.now() - t0;
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return { level: { tokens, wallMs, meanLatencyMs: mean(latencies), meanFirstTokenMs: mean(firsts), sameText: alone ? texts.every((t, i) => t === alone[i]) : true, ensembledPct: (100 * ensembled) / Math.max(1, tokens) }, texts };
}

function batchedPasses(models: readonly EnsembleMember[]): { batched: number; passes: number } | null {
  const local = models.filter((m): m is CausalLM => 'traffic' in m);
  if (local.length === 0) return null;
  return { batched: local.reduce((n, m) => n + m.traffic.batchedPasses, 0), passes: local.reduce((n, m) => n + m.traffic.passes, 0) };
}

/** CPU cores this process kept busy (all its threads), and the busy share of the event loops that do the work: the ensemble's, and each server's. */
function busyProbe(servers: readonly Worker[]): () => string {
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  const main = performance.eventLoopUtilization();
  const others = servers.map((w) => w.performance.eventLoopUtilization());
  return () => {
    const share = (u: { utilization: number }) => `${(100 * u.utilization).toFixed(0)}%`;
    const parts = [share(performance.eventLoopUtilization(main)), ...servers.map((w, i) => share(w.performance.eventLoopUtilization(others[i])))];
    const cpu = process.cpuUsage(cpu0);
    const cores = (cpu.user + cpu.system) / 1000 / (performance.now() - wall0);
    return `${cores.toFixed(2)} | ${parts.join(' / ')}`;
  };
}

async function benchSetup(title: string, members: EnsembleMember[], servers: readonly Worker[] = []): Promise<void> {
  const ensemble = new SafeEnsemble(members, { maxConcurrentGenerations: most });
  try {
    await ensemble.generate(questions[0]!, { maxNewTokens: 4 }); // warm-up
    console.log(`\n## ${title}\n`);
    console.log(`| generations at once | tokens | tokens/s | × one at a time | mean latency (ms) | first token (ms) | first token ÷ one at a time | passes batched | cores used | event loop busy: ensemble${servers.map((_, i) => ` / server ${i + 1}`).join('')} | E/T | text as alone |`);
    console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|');
    for (const n of levels) {
      // The same n requests one after another (the reference), then all n at once.
      const alone = await runLevel(ensemble, n, 1, null);
      const before = batchedPasses(members);
      const busy = busyProbe(servers);
      const together = await runLevel(ensemble, n, n, alone.texts);
      const busyShares = busy();
      const after = batchedPasses(members);
      const share = before && after ? (after.batched - before.batched) / Math.max(1, after.passes - before.passes) : null;
      const rate = (l: typeof together.level) => (1000 * l.tokens) / l.wallMs;
      const t = together.level;
      console.log(
        `| ${n} | ${t.tokens} | ${rate(t).toFixed(1)} | ${(rate(t) / rate(alone.level)).toFixed(2)} | ${t.meanLatencyMs.toFixed(0)} | ${t.meanFirstTokenMs.toFixed(0)} | ${(t.meanFirstTokenMs / alone.level.meanFirstTokenMs).toFixed(2)} | ${share === null ? '–' : `${(100 * share).toFixed(0)}%`} | ${busyShares} | ${t.ensembledPct.toFixed(0)}% | ${t.sameText ? 'yes' : '**no**'} |`,
      );
    }
  } finally {
    await ensemble.dispose();
  }
}

const setups = new Set(values.setups!.split(','));
// Local members share the cores, as SafeEnsemble.load sets them up (each worker runs at the same time as the other).
const loadLocal = (paths: readonly string[]) => Promise.all(paths.map((p) => loadModel(p, { threads: Math.max(1, Math.floor(availableParallelism() / paths.length)) })));
const pair = bundledModels();
console.log(`# bench:concurrency — SAFE, greedy, ${maxNewTokens} new tokens per request; levels ${levels.join(', ')}`);
if (setups.has('bundled')) await benchSetup('(a) bundled pair, local (worker threads)', await loadLocal(pair));
if (setups.has('smol')) {
  const dir = mkdtempSync(join(tmpdir(), 'lse-bench-concurrency-'));
  try {
    const a = writeFixtureModel(join(dir, 'qwen'), { tokenizer: 'qwen3', ...SMOL, seed: 1, logitScale: 3 });
    const b = writeFixtureModel(join(dir, 'mistral'), { tokenizer: 'llama2', ...SMOL, seed: 2, logitScale: 3 });
    await benchSetup('(b) smol shape (30 layers, hidden 576), local (worker threads)', await loadLocal([a, b]));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
if (setups.has('smol-agreeing')) {
  // Random weights of two seeds never agree (E/T near 100%, SAFE's worst case); a perturbed copy
  // agrees on most tokens, as two fine-tunes of one base model do.
  const dir = mkdtempSync(join(tmpdir(), 'lse-bench-concurrency-'));
  try {
    const a = writeFixtureModel(join(dir, 'base'), { tokenizer: 'qwen3', ...SMOL, seed: 1, logitScale: 3 });
    const b = writeFixtureModel(join(dir, 'near-copy'), { tokenizer: 'qwen3', ...SMOL, seed: 1, logitScale: 3, perturbation: { seed: 7, scale: PERTURBATION } });
    await benchSetup(`(b′) smol shape, a pair that mostly agrees (one Qwen3-vocabulary model and a copy with ${PERTURBATION} × noise on every weight), local (worker threads)`, await loadLocal([a, b]));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
if (setups.has('served')) {
  // Each server in a thread of its own (servedWorker.ts), apart from the ensemble's event loop.
  const servers = await Promise.all(
    pair.map(async (model) => {
      const options: EngineServerOptions = { engine: 'sglang', model, batching: { stepMs, capacity: 16 } };
      // The thread compiles the TypeScript as this process does (tsx's loader, registered there).
      const entry = new URL('./servedWorker.ts', import.meta.url).href;
      const worker = new Worker(`import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); })`, { eval: true, workerData: options });
      const { url } = await new Promise<{ url: string }>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      const close = () => new Promise<number>((resolve) => {
        worker.once('message', (m: { peakBatch: number }) => resolve(m.peakBatch));
        worker.postMessage('close');
      });
      return { url, close, worker };
    }),
  );
  let peaks: number[] = [];
  try {
    const members = await Promise.all(servers.map((s, i) => loadRemoteModel({ engine: 'sglang', url: s.url, tokenizer: pair[i]! })));
    await benchSetup(`(c) bundled pair served by loopback SGLang servers, each in its own thread (modelled: ${stepMs} ms per step, 16 batch slots)`, members, servers.map((s) => s.worker));
  } finally {
    peaks = await Promise.all(servers.map((s) => s.close()));
  }
  console.log(`\nlargest batch each server ran: ${peaks.join(', ')}`);
}
