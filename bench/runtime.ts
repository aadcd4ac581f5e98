/**
 * Runtime benchmark: per-step decode latency of CausalLM vs driving onnxruntime-node
 * directly on the same generated model, at a short and a long context.
 *
 *   npm run bench:runtime -- [--hidden 256] [--layers 4] [--steps 16] [--rounds 40] [--provider cpu|cuda] [--execution worker|inline]
 *
 * The two implementations alternate in short blocks (`steps` tokens, `rounds` times) from the
 * same cached prefix, so machine noise hits both alike.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fullGc } from '../src/cli/benchMethod.js';
import * as ortNs from 'onnxruntime-node';
import { loadModel } from '../src/index.js';
import { type ExecutionProviderName } from '../src/research.js';
import { writeFixtureModel } from '../tools/fixtures/tinyDecoder.js';

const ort = ((ortNs as unknown as { default?: typeof ortNs }).default ?? ortNs) as typeof ortNs;

const { values } = parseArgs({
  options: {
    hidden: { type: 'string', default: '256' },
    layers: { type: 'string', default: '4' },
    heads: { type: 'string', default: '8' },
    'kv-heads': { type: 'string', default: '2' },
    tokenizer: { type: 'string', default: 'llama2' },
    steps: { type: 'string', default: '16' },
    contexts: { type: 'string', default: '64,2048' },
    provider: { type: 'string', default: 'cpu' },
    threads: { type: 'string', default: '2' },
    execution: { type: 'string', default: 'worker' },
    rounds: { type: 'string', default: '40' },
  },
});
const hidden = Number(values.hidden);
const layers = Number(values.layers);
const heads = Number(values.heads);
const kvHeads = Number(values['kv-heads']);
const steps = Number(values.steps);
const rounds = Number(values.rounds);
const contexts = values.contexts!.split(',').map(Number);
const provider = values.provider as ExecutionProviderName;
const threads = Number(values.threads);

const dir = mkdtempSync(join(tmpdir(), 'lse-bench-'));
writeFixtureModel(dir, {
  tokenizer: values.tokenizer as 'llama2',
  hiddenSize: hidden,
  numLayers: layers,
  numHeads: heads,
  numKeyValueHeads: kvHeads,
  maxPositions: Math.max(...contexts) + steps + 16,
  externalData: true,
});

const lm = await loadModel(dir, { executionProviders: [provider], threads, execution: values.execution as 'worker' | 'inline' });
const session = await ort.InferenceSession.create(join(dir, 'onnx', 'model.onnx'), {
  executionProviders: [provider === 'cuda' ? { name: 'cuda', deviceId: 0 } : provider] as never,
  intraOpNumThreads: threads,
  interOpNumThreads: 1,
  graphOptimizationLevel: 'all',
  // The same session settings CausalLM uses by default.
  extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
});
const V = lm.info.vocabSize;
const hd = hidden / heads;

type Past = Record<string, ortNs.Tensor>;

/** One decode step written directly against onnxruntime-node (the baseline). */
async function rawStep(ids: number[], start: number, past: Past): Promise<{ past: Past; logits: Float32Array }> {
  const total = start + ids.length;
  const out = await session.run({
    input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(total).fill(1n), [1, total]),
    position_ids: new ort.Tensor('int64', BigInt64Array.from(ids, (_, i) => BigInt(start + i)), [1, ids.length]),
    ...past,
  });
  const next: Past = {};
  for (let l = 0; l < layers; l++) {
    next[`past_key_values.${l}.key`] = out[`present.${l}.key`]!;
    next[`past_key_values.${l}.value`] = out[`present.${l}.value`]!;
  }
  return { past: next, logits: out.logits!.data as Float32Array };
}

async function rawPrefill(prefix: number[]): Promise<Past> {
  let past: Past = {};
  for (let l = 0; l < layers; l++) {
    past[`past_key_values.${l}.key`] = new ort.Tensor('float32', new Float32Array(0), [1, kvHeads, 0, hd]);
    past[`past_key_values.${l}.value`] = new ort.Tensor('float32', new Float32Array(0), [1, kvHeads, 0, hd]);
  }
  return (await rawStep(prefix, 0, past)).past;
}

/** `n` decode steps from the prefix, raw; returns ms per token. */
async function rawBlock(prefixPast: Past, start: number, n: number): Promise<number> {
  let past = prefixPast;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) ({ past } = await rawStep([(i * 7919) % V], start + i, past));
  return (performance.now() - t0) / n;
}

/** `n` decode steps from the prefix through CausalLM (checks, cache bookkeeping, finite check, row view). */
async function wrappedBlock(start: number, n: number): Promise<number> {
  lm.crop(start);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await lm.forward([(i * 7919) % V], { logits: 'last' });
  return (performance.now() - t0) / n;
}

const mean = (xs: number[]) => xs.reduce((x, y) => x + y, 0) / xs.length;
console.log(`model: hidden ${hidden}, ${layers} layers, ${heads} heads / ${kvHeads} KV heads, vocab ${V}, provider ${lm.info.providers.providers.join('+')}, ${threads} threads, CausalLM execution ${lm.execution}`);
console.log('| context | onnxruntime-node direct (ms/token) | CausalLM (ms/token) | CausalLM tokens/s | wrapper overhead |');
console.log('|---:|---:|---:|---:|---:|');
for (const context of contexts) {
  const prefix = Array.from({ length: context }, (_, i) => 100 + ((i * 31) % 1000));
  const prefixPast = await rawPrefill(prefix);
  lm.reset();
  await lm.forward(prefix, { logits: 'last' });
  await rawBlock(prefixPast, context, 8); // warm-up
  await wrappedBlock(context, 8);
  const raw: number[] = [];
  const wrapped: number[] = [];
  // Many short blocks in AB/BA order (each side first and after the other equally often), a
  // full GC before each: machine noise and the other side's garbage land on both sides alike.
  const runRaw = async () => (fullGc(), raw.push(await rawBlock(prefixPast, context, steps)));
  const runWrapped = async () => (fullGc(), wrapped.push(await wrappedBlock(context, steps)));
  for (let r = 0; r < rounds; r++) {
    if (r % 2 === 0) {
      await runRaw();
      await runWrapped();
    } else {
      await runWrapped();
      await runRaw();
    }
  }
  const a = mean(raw);
  const b = mean(wrapped);
  console.log(`| ${context} | ${a.toFixed(3)} | ${b.toFixed(3)} | ${(1000 / b).toFixed(1)} | ${(((b - a) / a) * 100).toFixed(1)}% |`);
}
await lm.dispose();
await session.release();
rmSync(dir, { recursive: true, force: true });
